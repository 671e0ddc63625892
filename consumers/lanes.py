"""The two lanes a consumer worker may serve: the main one and the overflow.

The gateway publishes a flooding team's or customer's writes to the overflow topic
(``ingest_gateway/write/lanes.py``); each lane has its own topic and consumer group,
so that a backlog in one never delays the other. Imports only ``runtime.settings``
(the supervising parent imports this, and never the clients).
"""

from __future__ import annotations

from typing import Literal

from runtime.settings import Settings

Lane = Literal["main", "overflow"]
LANES: tuple[Lane, ...] = ("main", "overflow")


def topic_and_group(settings: Settings, lane: Lane) -> tuple[str, str]:
    """The topic a lane's workers read and their consumer group."""
    if lane == "overflow":
        return settings.writes_overflow_topic, f"{settings.consumer_group}.overflow"
    return settings.writes_topic, settings.consumer_group
