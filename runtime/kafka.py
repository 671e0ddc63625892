"""The Kafka producer every process uses: acks=all, idempotent, records up to the limit."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from runtime.settings import Settings


def acked_producer(settings: Settings, client_id: str, **options: Any) -> AIOKafkaProducer:
    """A producer whose acknowledged sends are on every in-sync replica, never twice.

    aiokafka's defaults are not ours (acks=1 without idempotence); the record size
    is the one KAFKA_MESSAGE_MAX_BYTES the broker and topics are set to.
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.kafka_message_max_bytes,
        **options,
    )
