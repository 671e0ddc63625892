"""Running the Node scripts of ``tests/sdk/js`` (its packages come from ``npm ci``).

Nothing here skips: a machine without Node, the packages or Chromium fails the test
and says how to get them (``make venv-test`` installs all three).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from tests.support import REPO

JS = REPO / "tests" / "sdk" / "js"
PACKAGES = ("@segment/analytics-node", "@segment/analytics-next", "playwright-core")
CHROMIUM = Path("/usr/bin/chromium")
SETUP = "run `make venv-test` (npm ci in tests/sdk/js, apt-get install chromium)"


def node_binary() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail(f"node is not on PATH: install Node.js 20+ and {SETUP}")
    missing = [p for p in PACKAGES if not (JS / "node_modules" / p / "package.json").exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed in {JS}/node_modules: {SETUP}")
    return found


def chromium_binary() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (Debian's chromium package): {SETUP}")
    return CHROMIUM


class NodeScript:
    """A script of ``tests/sdk/js`` running in Node: JSON lines out, its log kept."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        self.name = name
        self.process = process
        self._log = log

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-6000:]

    def fail(self, why: str) -> None:
        pytest.fail(f"{self.name}: {why}\n--- its output:\n{self.log()}")

    async def message(self, timeout: float) -> Any:
        """The next JSON line the script prints."""
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            self.fail(f"said nothing within {timeout}s")
        if not line:
            await self.process.wait()
            self.fail(f"exited ({self.process.returncode}) before saying what was expected")
        return orjson.loads(line)

    async def finish(self, stdin: bytes = b"", timeout: float = 60) -> None:
        """Write ``stdin``, close it, and wait for the script to exit 0."""
        assert self.process.stdin is not None
        self.process.stdin.write(stdin)
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.fail(f"still running after {timeout}s")
        if self.process.returncode != 0:
            self.fail(f"exited {self.process.returncode}")


@asynccontextmanager
async def node_script(name: str, *args: str) -> AsyncIterator[NodeScript]:
    """``node js/<name> args``; killed on the way out if still running."""
    node = node_binary()
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            node,
            str(JS / name),
            *args,
            cwd=JS,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        try:
            yield NodeScript(name, process, log)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
