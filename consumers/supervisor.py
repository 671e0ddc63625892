"""Keep worker processes running: restart what exits, with backoff; give up on a crash loop.

``Supervisor(children, policy).run()`` is the whole parent process of
``ingest-consumer``. The contract:

* Every child is started as its own program (``subprocess``: a fresh interpreter,
  nothing inherited but the environment, the standard streams and one pipe, below).
* A child that exits, whatever its exit code or signal (SIGKILL and the OOM killer
  included), is restarted after a delay: ``backoff_s``, doubling at each restart up
  to ``backoff_max_s``. A child that stayed up ``healthy_after_s`` starts over at
  ``backoff_s``. Each exit is logged with the child's name, pid, exit code or
  signal, how long it ran and the delay.
* A child that dies ``max_start_failures`` times in a row, each time within
  ``start_window_s`` of its start, will not get better by itself (bad settings,
  a port taken, a broken install): the supervisor logs it at CRITICAL, stops the
  other children as for SIGTERM and ``run()`` returns 1.
* A child that exits with one of ``fatal_exit_codes`` asks not to be restarted
  (it stopped for a person to look): the supervisor logs it at CRITICAL, stops
  the others and ``run()`` returns that code.
* SIGTERM or SIGINT: every child gets SIGTERM (a worker then finishes and commits
  its current batch), the supervisor waits for them and ``run()`` returns 0.
  Repeating the signal does not hurry the stop (a Ctrl-C in a terminal reaches
  the children too, and a shell's clean-up usually sends SIGTERM on top); a child
  still running after ``stop_timeout_s`` is killed, which is safe: its batch is
  not committed, so Kafka delivers it again and the ledger skips what was applied.
* If the supervisor itself dies without stopping them (SIGKILL, OOM), the children
  notice (``watch_supervisor``) and stop as for SIGTERM, so a restarted supervisor
  never runs next to orphans of the previous one.

The supervisor runs no event loop and no thread: it sleeps in ``select`` on a
pipe that signal handlers write to (``signal.set_wakeup_fd``; SIGCHLD wakes it
when a child exits) with the next due restart as timeout.

The policy comes from the settings (``RestartPolicy.from_settings``). Imports the
standard library, ``runtime.settings`` and ``consumers.metrics`` (the restarts
counter, prometheus_client) only: no client of Kafka or PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import FrameType

from consumers import metrics
from runtime.settings import Settings

log = logging.getLogger(__name__)

# The read end of a pipe whose write end only the supervisor holds: EOF there
# means the supervisor is gone.
SUPERVISOR_FD_ENV = "INGEST_SUPERVISOR_FD"


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child, and when to give up (``CONSUMER_RESTART_*`` settings)."""

    backoff_s: float = 0.5  # the first restart's delay
    backoff_max_s: float = 10.0  # the delay doubles up to this
    healthy_after_s: float = 30.0  # up this long, the backoff starts over
    start_window_s: float = 5.0  # a death this soon after starting is "at start"
    max_start_failures: int = 5  # that many deaths at start in a row: give up
    stop_timeout_s: float = 60.0  # then a child asked to stop is killed

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be > 0, not {getattr(self, f.name)!r}")
        if self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_max_s must be >= backoff_s")

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(
            backoff_s=settings.consumer_restart_backoff_s,
            backoff_max_s=settings.consumer_restart_backoff_max_s,
            healthy_after_s=settings.consumer_restart_healthy_after_s,
            start_window_s=settings.consumer_restart_start_window_s,
            max_start_failures=settings.consumer_restart_max_start_failures,
            stop_timeout_s=settings.consumer_stop_timeout_s,
        )

    def delay(self, restarts: int) -> float:
        """The delay before restart number ``restarts + 1`` since the child was last healthy."""
        return min(self.backoff_s * 2.0 ** min(restarts, 64), self.backoff_max_s)


@dataclass(frozen=True)
class ChildSpec:
    """One supervised child: a name for the logs, its command line and extra environment."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None


def _ending(returncode: int) -> tuple[bool, str]:
    """(killed by a signal, the exit code or the signal's name): ``Popen.returncode``
    is -N for signal N."""
    if returncode >= 0:
        return False, str(returncode)
    try:
        return True, signal.Signals(-returncode).name
    except ValueError:
        return True, str(-returncode)


def describe_exit(returncode: int) -> str:
    """``exit code 1``, ``killed by SIGKILL`` or ``killed by signal 99``."""
    killed, what = _ending(returncode)
    if not killed:
        return f"exit code {what}"
    return f"killed by {what}" if what.startswith("SIG") else f"killed by signal {what}"


def restart_cause(returncode: int | None) -> str:
    """The ``cause`` label of a restart: ``exit_1``, ``signal_SIGKILL``, ``not_started``."""
    if returncode is None:
        return "not_started"
    killed, what = _ending(returncode)
    return f"{'signal' if killed else 'exit'}_{what}"


class _Child:
    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None  # set while waiting to be restarted
        self.restarts = 0  # since the child was last healthy: the backoff exponent
        self.start_failures = 0  # consecutive deaths within start_window_s of a start


class Supervisor:
    """Runs ``children`` until SIGTERM/SIGINT (returns 0), a crash loop (returns 1) or
    a child's exit with one of ``fatal_exit_codes`` (returns that code)."""

    def __init__(
        self,
        children: Iterable[ChildSpec],
        policy: RestartPolicy,
        fatal_exit_codes: Collection[int] = (),
    ) -> None:
        self.children = [_Child(spec) for spec in children]
        self.policy = policy
        self.fatal_exit_codes = frozenset(fatal_exit_codes)
        self._stop_signal: int | None = None
        self._gave_up: int | None = None  # the exit code, once the supervisor gave up
        self._wakeup_r = -1
        self._alive_r = -1

    def run(self) -> int:
        wakeup_r, wakeup_w = os.pipe()
        alive_r, alive_w = os.pipe()  # never written: children watch for its EOF
        os.set_blocking(wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        self._wakeup_r, self._alive_r = wakeup_r, alive_r
        previous_fd = signal.set_wakeup_fd(wakeup_w)
        # A Python handler for SIGCHLD only so that its arrival wakes the select.
        handlers = {
            sig: signal.signal(sig, handler)
            for sig, handler in (
                (signal.SIGTERM, self._on_stop_signal),
                (signal.SIGINT, self._on_stop_signal),
                (signal.SIGCHLD, _ignore),
            )
        }
        try:
            log.info(
                "supervising %d worker process(es): %s",
                len(self.children),
                ", ".join(c.spec.name for c in self.children),
            )
            for child in self.children:
                self._start(child)
            self._supervise()
            self._stop_all()
        finally:
            for sig, previous in handlers.items():
                signal.signal(sig, signal.SIG_DFL if previous is None else previous)
            signal.set_wakeup_fd(previous_fd)
            for fd in (wakeup_r, wakeup_w, alive_r, alive_w):
                os.close(fd)
        if self._gave_up is not None and self._stop_signal is None:
            log.critical("supervisor exits %d: see the CRITICAL line above", self._gave_up)
            return self._gave_up
        log.info("all worker processes stopped")
        return 0

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum

    def _supervise(self) -> None:
        while self._stop_signal is None and self._gave_up is None:
            now = time.monotonic()
            for child in self.children:
                if child.popen is not None and child.popen.poll() is not None:
                    self._exited(child, child.popen.returncode, now)
            if self._stop_signal is not None or self._gave_up is not None:
                break
            for child in self.children:
                if child.restart_at is not None and child.restart_at <= now:
                    self._start(child)
            due = [c.restart_at for c in self.children if c.restart_at is not None]
            self._sleep(max(0.0, min(due) - time.monotonic()) if due else None)
        if self._stop_signal is not None:
            log.info(
                "%s received: stopping the worker processes",
                signal.Signals(self._stop_signal).name,
            )

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        env = {**os.environ, **(child.spec.env or {}), SUPERVISOR_FD_ENV: str(self._alive_r)}
        try:
            # The command lines are the program's own (ChildSpec), not outside input.
            child.popen = subprocess.Popen(  # noqa: S603
                child.spec.argv, env=env, stdin=subprocess.DEVNULL, pass_fds=(self._alive_r,)
            )
        except OSError:  # fork or exec failed: counted as a death at start
            log.exception("%s could not be started", child.spec.name)
            self._exited(child, None, child.started_at)
            return
        log.info("started %s (pid %d)", child.spec.name, child.popen.pid)

    def _exited(self, child: _Child, returncode: int | None, now: float) -> None:
        """Schedule the restart of a child that ended, or give up on it."""
        pid = child.popen.pid if child.popen is not None else None
        child.popen = None
        ran = now - child.started_at
        how = "could not start" if returncode is None else describe_exit(returncode)
        who = child.spec.name if pid is None else f"{child.spec.name} (pid {pid})"
        if returncode in self.fatal_exit_codes:
            log.critical(
                "%s exited (%s) after %.1f s: it asks not to be restarted;"
                " stopping the other worker processes",
                who,
                how,
                ran,
            )
            self._gave_up = returncode
            return
        if ran >= self.policy.healthy_after_s:
            child.restarts = 0
        child.start_failures = child.start_failures + 1 if ran < self.policy.start_window_s else 0
        if child.start_failures >= self.policy.max_start_failures:
            log.critical(
                "%s died %d times in a row within %.1f s of starting (last: %s after %.1f s);"
                " giving up: stopping the other worker processes",
                who,
                child.start_failures,
                self.policy.start_window_s,
                how,
                ran,
            )
            self._gave_up = 1
            return
        delay = self.policy.delay(child.restarts)
        child.restarts += 1
        child.restart_at = now + delay
        metrics.RESTARTS.labels(child.spec.name, restart_cause(returncode)).inc()
        log.warning("%s exited (%s) after %.1f s; restarting it in %.1f s", who, how, ran, delay)

    def _stop_all(self) -> None:
        """SIGTERM every running child, wait up to stop_timeout_s, then SIGKILL the rest."""
        for child in self.children:
            child.restart_at = None
            if child.popen is not None and child.popen.poll() is None:
                child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.policy.stop_timeout_s
        killed = False
        while True:
            for child in self.children:
                if child.popen is not None and child.popen.poll() is not None:
                    log.info(
                        "%s (pid %d) stopped (%s)",
                        child.spec.name,
                        child.popen.pid,
                        describe_exit(child.popen.returncode),
                    )
                    child.popen = None
            running = [c for c in self.children if c.popen is not None]
            if not running:
                return
            left = deadline - time.monotonic()
            if left <= 0 and not killed:
                for child in running:
                    assert child.popen is not None
                    log.error(
                        "%s (pid %d) still running %.0f s after SIGTERM: killing it"
                        " (its uncommitted batch will be delivered again)",
                        child.spec.name,
                        child.popen.pid,
                        self.policy.stop_timeout_s,
                    )
                    child.popen.kill()
                killed = True
            self._sleep(max(left, 0.0) if not killed else None)

    def _sleep(self, timeout: float | None) -> None:
        """Wait until a signal arrives (a child exited, a stop) or ``timeout`` passed."""
        select.select([self._wakeup_r], [], [], timeout)
        try:
            while os.read(self._wakeup_r, 512):
                pass
        except BlockingIOError:
            pass


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    pass


def watch_supervisor() -> None:
    """In a child: SIGTERM ourselves when the supervisor that started us is gone.

    A daemon thread blocks reading the pipe named by ``INGEST_SUPERVISOR_FD``; only
    the supervisor holds its write end, so the read returns (EOF) once the
    supervisor exited, however it died. Nothing happens outside a supervisor.
    """
    raw = os.environ.pop(SUPERVISOR_FD_ENV, None)
    if raw is None:
        return
    fd = int(raw)

    def watch() -> None:
        try:
            while os.read(fd, 512):
                pass
        except OSError:
            pass
        log.error("the supervisor is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-supervisor", daemon=True).start()
