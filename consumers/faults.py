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

Only this module decides; the worker acts on the kind.
"""

from __future__ import annotations

import enum
import random

import asyncpg
from aiokafka.errors import KafkaError

from consumers.apply import ConcurrentChange
from runtime.pg import is_unavailable


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
