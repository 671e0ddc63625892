"""The processes under test: starting the pipeline's own, and their CPU time from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, CPU seconds of reaped children) of ``pid``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime) / _TICKS, (cutime + cstime) / _TICKS


def process_table() -> dict[int, tuple[int, float, float]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def tree_cpu(root: int, table: dict[int, tuple[int, float, float]]) -> float:
    """CPU seconds of ``root`` and all its descendants, living or reaped."""
    if root not in table:
        return 0.0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _own, _reaped) in table.items():
        children.setdefault(ppid, []).append(pid)
    total = 0.0
    stack = [root]
    while stack:
        pid = stack.pop()
        _ppid, own, reaped = table[pid]
        total += own + reaped
        stack.extend(children.get(pid, ()))
    return total


def kafka_pid() -> int | None:
    """The local broker started by deploy/services.sh, else any JVM running kafka.Kafka."""
    pid_file = REPO / ".local" / "kafka" / "kafka.pid"
    if pid_file.exists():
        text = pid_file.read_text().strip()
        if text.isdigit() and Path(f"/proc/{text}").exists():
            return int(text)
    return _find_cmdline(b"kafka.Kafka")


def postgres_pid() -> int | None:
    """The postmaster of the local cluster (its backends are its children)."""
    pid_file = REPO / ".local" / "pg" / "data" / "postmaster.pid"
    if pid_file.exists():
        first = pid_file.read_text().split("\n", 1)[0].strip()
        if first.isdigit() and Path(f"/proc/{first}").exists():
            return int(first)
    table = process_table()
    candidates = [
        pid for pid in table if _comm(pid) == "postgres" and _comm(table[pid][0]) != "postgres"
    ]
    return min(candidates) if candidates else None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _find_cmdline(needle: bytes) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                    return int(entry)
            except OSError:
                continue
    return None


class Service:
    """A pipeline process started by the benchmark, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                # Its own session: this reaches its workers too, and nothing else.
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
