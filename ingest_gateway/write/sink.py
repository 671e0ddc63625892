"""Where accepted writes go: the sink interface and the domain errors it raises.

``accept`` hands a request's messages to a ``Sink`` (``publisher.Publisher``, Kafka,
in the gateway; a test's fake elsewhere) and answers only once ``publish`` returned.
A sink says what went wrong in the write path's own terms: ``MessageTooLarge`` (a
message can never be published: the client's fault) and ``BrokerUnavailable``
(nothing was accepted: retry later). The HTTP layer alone turns them into status
codes (``ingest_gateway.web.errors``: 413, and 503 with ``Retry-After``).

Imports ``schemas.messages`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from schemas.messages import WriteMessage


class Sink(Protocol):
    async def publish(self, messages: Sequence[WriteMessage], topic: str | None = None) -> None:
        """Return once every message is durably accepted in ``topic`` (default: the
        writes topic); else raise ``MessageTooLarge`` (before any of them is sent) or
        ``BrokerUnavailable`` (some may still arrive: the client retries, and message
        ids make a resend harmless)."""

    async def publish_dead_letters(self, messages: Sequence[WriteMessage], reason: str) -> None:
        """As ``publish``, to the dead-letter topic with ``reason``."""


class MessageTooLarge(Exception):
    """A message is ``size`` bytes once encoded, more than the ``limit`` a record holds."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"A write is {size} bytes once encoded, more than the limit of {limit} bytes"
        )
        self.size = size
        self.limit = limit


class BrokerUnavailable(Exception):
    """The broker did not acknowledge the write in time: the write is not accepted."""
