"""The dead-letter topic: messages a consumer cannot apply, with the reason, payload intact.

Each dead letter keeps the original bytes as its value (so it can be replayed after
a fix) and says why and where it came from in its headers.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class DeadLetterSink:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, letters: list[DeadLetter]) -> None:
        """Publish and wait for the acknowledgements (before the offsets are committed)."""
        futures = [
            await self._producer.send(
                self._topic,
                value=letter.value,
                key=letter.key,
                headers=[
                    ("reason", letter.reason[:1000].encode()),
                    ("source", f"{letter.topic}/{letter.partition}/{letter.offset}".encode()),
                ],
            )
            for letter in letters
        ]
        for future in futures:
            await future
