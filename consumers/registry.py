"""The consumers this package runs, each declared in one place.

One job: say what a consumer is (the topic it reads, its group, its chain of
steps, where refusals go, its limits), so that a reader finds all of it here and
``consumers.worker`` stays the same loop for any of them. There is one today,
``writes``, in two lanes (``consumers.lanes``); ``ingest-consumer`` runs both.
Imports ``consumers.steps`` and what its steps are made of, and ``runtime.settings``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers.dead_letter import DeadLetterLimit, DeadLetterSink
from consumers.faults import Backoff
from consumers.lanes import Lane, topic_and_group
from consumers.steps import Apply, Commit, Decode, SendDeadLetters, Step
from runtime.settings import Settings


@dataclass(frozen=True)
class Clients:
    """What a worker opened for its steps."""

    pool: asyncpg.Pool
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer  # the dead-letter topic's
    stopping: asyncio.Event  # set when the worker is asked to stop


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer, declared: what it reads, its chain of steps, where refusals go."""

    topic: str
    group: str
    dead_letter_topic: str
    max_records: int  # records per poll, and messages per transaction
    # (max ratio, window): stop when more than that share of the last messages is refused
    dead_letter_limit: tuple[float, int]
    steps: Callable[[ConsumerSpec, Clients], list[Step]]  # the chain, commit last
    # The share of its time a worker spends on batches (it rests the rest); 1: no rest.
    busy_share: float = 1.0

    def chain(self, clients: Clients) -> list[Step]:
        """The steps, made for the clients a worker opened."""
        return self.steps(self, clients)


def writes(settings: Settings, lane: Lane = "main") -> ConsumerSpec:
    """The consumer of canonical writes of ``lane``: apply them to PostgreSQL, in batches."""

    def steps(spec: ConsumerSpec, clients: Clients) -> list[Step]:
        sink = DeadLetterSink(
            clients.producer, spec.dead_letter_topic, settings.kafka_message_max_bytes
        )
        limit = DeadLetterLimit(*spec.dead_letter_limit)
        backoff = Backoff(clients.stopping, settings.retry_backoff_max_s)
        return [
            Decode(),
            Apply(clients.pool, settings, clients.stopping),
            SendDeadLetters(sink, clients.pool, limit, backoff),
            Commit(clients.consumer),
        ]

    topic, group = topic_and_group(settings, lane)
    overflow = lane == "overflow"
    return ConsumerSpec(
        topic=topic,
        group=group,
        dead_letter_topic=settings.dead_letter_topic,
        max_records=(
            settings.consumer_overflow_max_records if overflow else settings.consumer_max_records
        ),
        busy_share=settings.consumer_overflow_share if overflow else 1.0,
        dead_letter_limit=(settings.dead_letter_max_ratio, settings.dead_letter_window),
        steps=steps,
    )
