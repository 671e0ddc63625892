"""Helpers shared by the tests: polling with a deadline, processes, free ports, lookups
of stored customers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ingest_gateway.read_model.events import customer_for_identifier
from runtime.pg import Db

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A pipeline process (gateway or consumer) started for a test, logs in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def crash(self) -> None:
        """SIGKILL the process and its children at once, as a host going down would.

        (SIGKILL of a supervisor alone lets its workers finish their batch and stop
        cleanly; a crash must not.)
        """
        for child in children_of(self.popen.pid):
            os.kill(child, signal.SIGKILL)
        self.kill()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


async def wait_for_http(url: str, process: Process, timeout: float = 60) -> None:
    async def ready() -> bool:
        if process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited:\n{process.tail()}")
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(url, timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(ready, timeout=timeout, interval=0.2)


def old_message_id(days: float) -> uuid.UUID:
    """A UUIDv7 from ``days`` ago: the write's time is in the leading 48 bits."""
    return uuid.UUID(int=(int((time.time() - days * 86400) * 1000) << 80) | 1)


def children_of(pid: int) -> set[int]:
    """The live child processes of ``pid``, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


async def created_customer(
    http: httpx.AsyncClient,
    db: Any,
    team_id: int,
    headers: dict[str, str],
    address: str,
    **form: str,
) -> str:
    """Create (and wait for) a customer through the 000 API; its customer id."""
    created = await http.post(f"/api/1.0/customer/{address}?wait=true", data=form, headers=headers)
    assert created.status_code == 200, created.text
    return str(await customer_holding(db, team_id, "email", address))


async def customer_holding(db: Db, team_id: int, kind: str, value: str) -> int | None:
    """The customer holding the identifier ``kind``: ``value``, or None (kind
    ``customer_id`` resolves a merged-away id to the customer it went into)."""
    return await customer_for_identifier(db, team_id, kind, value)


async def stored_customer(db: Any, team: Any, address: str) -> Any:
    """The stored row of ``team``'s customer with this email, or None."""
    return await db.fetchrow(
        "SELECT c.* FROM customers c JOIN customer_identifiers i ON i.customer_id = c.id"
        " WHERE i.team_id = $1 AND i.kind = 'email' AND i.value = $2",
        team.id,
        address,
    )
