"""The dead-letter topic: messages a consumer cannot apply, with the reason, payload intact.

One job: what a dead letter is and how it reaches the topic. Each dead letter keeps
the original bytes as its value (so it can be replayed after a fix) and says why
and where it came from in its headers (``DeadLetterSink``); ``DeadLetterLimit``
stops a consumer that would send nearly everything there. The dead-letter step
(``consumers.steps``) uses both. Imports aiokafka and nothing of the project.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer


@dataclass(frozen=True)
class DeadLetter:
    value: bytes
    key: bytes | None
    reason: str
    topic: str
    partition: int
    offset: int
    message_id: str | None = None

    @classmethod
    def of(
        cls, record: Any, value: bytes, key: bytes | None, reason: str, message_id: str | None
    ) -> DeadLetter:
        """A letter holding ``value`` (``record``'s or part of it), from ``record``'s place."""
        return cls(
            value=value,
            key=key,
            reason=reason,
            topic=getattr(record, "topic", ""),
            partition=getattr(record, "partition", -1),
            offset=getattr(record, "offset", -1),
            message_id=message_id,
        )


# Bytes of a record besides its value, key and headers (Kafka's batch and record
# framing), with room to spare.
_FRAMING_BYTES = 512
_MAX_REASON_BYTES = 1000


class DeadLetterSink:
    def __init__(self, producer: AIOKafkaProducer, topic: str, max_record_bytes: int) -> None:
        self._producer = producer
        self._topic = topic
        self._max_record_bytes = max_record_bytes

    def _headers(self, letter: DeadLetter) -> list[tuple[str, bytes]]:
        """The letter's reason and source; the reason is cut short rather than the
        record grown past what the topic accepts (the value is kept whole)."""
        source = f"{letter.topic}/{letter.partition}/{letter.offset}".encode()
        room = (
            self._max_record_bytes
            - len(letter.value)
            - len(letter.key or b"")
            - len(source)
            - _FRAMING_BYTES
        )
        cut = letter.reason.encode(errors="replace")[: max(0, min(room, _MAX_REASON_BYTES))]
        # (a cut inside a multi-byte character drops that character)
        return [("reason", cut.decode(errors="ignore").encode()), ("source", source)]

    async def send(self, letters: list[DeadLetter]) -> None:
        """Publish and wait for the acknowledgements (before the offsets are committed)."""
        futures = [
            await self._producer.send(
                self._topic, value=letter.value, key=letter.key, headers=self._headers(letter)
            )
            for letter in letters
        ]
        for future in futures:
            await future


class DeadLetterLimitExceeded(Exception):
    """Nearly every message goes to the dead-letter topic: stop rather than empty the topic."""


class DeadLetterLimit:
    """Trips when the share of dead letters among recent messages passes a ratio.

    As arroyo's ``DlqLimit``: a few bad messages are dead-lettered and the partition
    moves on, but when almost everything is refused (a bug, a wrong topic, a
    schema change) the consumer stops loudly before it commits, so the messages
    stay in Kafka for a fixed consumer instead of ending up in the dead-letter topic.
    The share is taken over the last ``window`` messages or more (whole batches,
    the current one included), and only once that many were seen.
    """

    def __init__(self, max_ratio: float, window: int) -> None:
        self.max_ratio = max_ratio
        self.window = window
        self._batches: deque[tuple[int, int]] = deque()  # (messages, dead letters)
        self._messages = 0
        self._dead = 0

    def check(self, messages: int, dead: int) -> None:
        """Count a batch; raises ``DeadLetterLimitExceeded`` when the share is too high."""
        self._batches.append((messages, dead))
        self._messages += messages
        self._dead += dead
        while self._batches and self._messages - self._batches[0][0] >= self.window:
            old_messages, old_dead = self._batches.popleft()
            self._messages -= old_messages
            self._dead -= old_dead
        if self._messages >= self.window and self._dead > self.max_ratio * self._messages:
            raise DeadLetterLimitExceeded(
                f"{self._dead} of the last {self._messages} messages could not be applied"
                f" (limit {self.max_ratio:.0%}, DEAD_LETTER_MAX_RATIO)"
            )
