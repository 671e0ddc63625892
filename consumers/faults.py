"""What a failure means for the consumer: wait for the infrastructure, retry, or blame the message.

Three kinds, decided by the exception alone:

- ``INFRASTRUCTURE``: PostgreSQL or Kafka is unreachable, restarting or refusing
  connections, or a pooled connection broke. Nothing is wrong with the messages:
  retry the same work, with capped backoff, for as long as it takes.
- ``ABORT``: PostgreSQL aborted the transaction for concurrency (deadlock,
  serialisation, a concurrent insert that won a unique key). Retry a bounded number
  of times; a batch that keeps aborting is split like a bad one.
- ``MESSAGE``: anything else. Some message of the batch cannot be applied (bad data
  PostgreSQL refuses, a value the encoders cannot write, a bug met by one input);
  the batch is split until that message is alone, and it is dead-lettered.

One job: what a failure means and how it is waited out. Only this module decides
the kind; the apply step (``consumers.steps``) acts on it, and ``Backoff`` waits
between retries (``until_done`` retries an operation through infrastructure
faults) and ends a wait at once when a stop is asked for (``Stopping``). Imports
asyncpg's and aiokafka's errors, ``runtime.pg``, ``consumers.metrics`` and
``consumers.statements`` (its ``ConcurrentChange``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError

from consumers import metrics
from consumers.statements import ConcurrentChange
from runtime.pg import is_unavailable

log = logging.getLogger(__name__)


class Fault(enum.Enum):
    INFRASTRUCTURE = "infrastructure"
    ABORT = "abort"
    MESSAGE = "message"


_ABORT: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
    asyncpg.UniqueViolationError,  # a concurrent insert won the race; the retry sees it
    ConcurrentChange,
)


def classify(exc: BaseException) -> Fault:
    if isinstance(exc, _ABORT):
        return Fault.ABORT
    if isinstance(exc, KafkaError) or is_unavailable(exc):
        return Fault.INFRASTRUCTURE
    return Fault.MESSAGE


def backoff(attempt: int, cap: float) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): doubling from 20 ms, jittered."""
    delay: float = min(0.02 * 2 ** min(attempt, 16), cap)
    return delay * (0.5 + random.random())


class Stopping(BaseException):
    """A stop was asked for while waiting out an outage: leave without committing.

    A BaseException, as ``CancelledError`` is: the handlers that isolate a failing
    message catch ``Exception`` and must not take a stop for a bad message.
    """


@dataclass(frozen=True)
class Backoff:
    """Waits between retries, ``backoff`` long, and raises ``Stopping`` once ``stopping`` is set."""

    stopping: asyncio.Event
    max_s: float  # RETRY_BACKOFF_MAX_S

    async def wait(self, attempt: int) -> None:
        """Sleep before retry ``attempt``; raise ``Stopping`` at once if a stop is asked for."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), backoff(attempt, self.max_s))
        if self.stopping.is_set():
            raise Stopping

    async def until_done(self, what: str, operation: Callable[[], Awaitable[None]]) -> None:
        """Run ``operation`` until it succeeds, waiting out infrastructure faults.

        Anything else is raised. Work whose offsets are not committed yet is safe to
        repeat: the ledger makes a second application a no-op.
        """
        attempt = 0
        while True:
            try:
                await operation()
                return
            except Exception as exc:
                if classify(exc) is not Fault.INFRASTRUCTURE:
                    raise
                attempt += 1
                metrics.RETRIES.labels(type(exc).__name__).inc()
                log.warning(
                    "%s failed (%s: %s); retrying (attempt %d)",
                    what,
                    type(exc).__name__,
                    exc,
                    attempt,
                )
                await self.wait(attempt)
