"""``ingest-admin lag``: how far a consumer group is behind, per partition, without Java.

    ingest-admin lag [--lane main|overflow] [--group GROUP] [--topic TOPIC ...] [--json]

Kafka's own view, as its consumer-group tool gives it: for each partition of the
group's topics, the offset the group committed, the partition's end (the offset
the next record will get), the lag between them, and which member of the group
reads it now (its member id, which starts with the client id, and its host, from the
group's assignment); then the total.

- ``--lane``: ``main`` (default) or ``overflow``: the lane's group and topic
  (``consumers.lanes``).
- ``--group``: default the lane's (``CONSUMER_GROUP``, or ``CONSUMER_GROUP.overflow``);
  the replay's is ``ingest-admin-replay`` (on ``DEAD_LETTER_TOPIC``).
- ``--topic``: default every topic the group committed offsets for or is assigned,
  else the lane's (``WRITES_TOPIC`` or ``WRITES_OVERFLOW_TOPIC``).
- A partition the group committed nothing for is read from its start when the group
  gets it (the consumers' ``auto_offset_reset``), so its lag counts every record
  still in it; so does a committed offset the log no longer holds (retention, a
  purge).

Only reads: it joins no group. Imports Kafka's client, ``admin.terminal``,
``admin.topic_reader``, ``consumers.lanes`` and ``runtime.settings``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocol

from admin.terminal import table, to_json
from admin.topic_reader import (
    Clients,
    bounds,
    committed,
    group_offsets,
    kafka_clients,
    topic_partitions,
)
from consumers.lanes import LANES, topic_and_group
from runtime.settings import Settings

COMMANDS = frozenset({"lag"})

CLIENT_ID = "ingest-admin-lag"


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    lag = sub.add_parser("lag", help="a consumer group's lag per partition, and the total")
    lag.add_argument("--group", help="default: the lane's group (CONSUMER_GROUP)")
    lag.add_argument(
        "--lane",
        choices=LANES,
        default="main",
        help="main (default) or overflow: the lane's group and topic",
    )
    lag.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC",
        help="default: the group's topics (repeatable)",
    )
    lag.add_argument("--json", action="store_true", help="print JSON")


async def run(settings: Settings, args: argparse.Namespace) -> str:
    """Run ``lag``; returns what to print."""
    topic, group = topic_and_group(settings, args.lane)
    async with kafka_clients(settings, CLIENT_ID) as kafka:
        found = await group_lag(kafka, args.group or group, args.topic, topic)
    return to_json(found.as_json()) if args.json else found.report()


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    start: int
    end: int
    owner: str | None

    @property
    def lag(self) -> int:
        """Records the group has still to read (from the start when it committed none,
        or committed an offset the log no longer holds)."""
        return self.end - max(self.start, self.committed or 0)


@dataclass(frozen=True)
class GroupLag:
    group: str
    state: str
    members: int
    partitions: list[PartitionLag]

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def report(self) -> str:
        return "\n".join(
            [
                f"group {self.group}: {self.state}, {self.members} member(s)",
                table(
                    ["topic", "partition", "committed", "end", "lag", "owner"],
                    (
                        [p.topic, p.partition, p.committed, p.end, p.lag, p.owner]
                        for p in self.partitions
                    ),
                ),
                f"total lag: {self.total}",
            ]
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed": p.committed,
                    "start": p.start,
                    "end": p.end,
                    "lag": p.lag,
                    "owner": p.owner,
                }
                for p in self.partitions
            ],
            "total_lag": self.total,
        }


async def group_lag(
    kafka: Clients, group: str, topics: list[str] | None, default_topic: str
) -> GroupLag:
    """The lag of ``group`` on ``topics`` (None: its own, else ``default_topic``)."""
    described = (await kafka.admin.describe_consumer_groups([group]))[0].to_object()["groups"][0]
    owners = _owners(described)
    if not topics:
        offsets = await group_offsets(kafka.admin, group)
        topics = sorted({tp.topic for tp in [*offsets, *owners]}) or [default_topic]
    partitions = [tp for topic in topics for tp in await topic_partitions(kafka.admin, topic)]
    at = await committed(kafka.admin, group, partitions)
    spans = await bounds(kafka.consumer, partitions)
    return GroupLag(
        group=group,
        state=described["state"],
        members=len(described["members"]),
        partitions=[
            PartitionLag(
                tp.topic, tp.partition, at[tp], spans[tp].start, spans[tp].end, owners.get(tp)
            )
            for tp in partitions
        ],
    )


def _owners(described: dict[str, Any]) -> dict[TopicPartition, str]:
    """Who reads each partition now: ``member id@host`` of the member assigned it."""
    if described["protocol_type"] != ConsumerProtocol.PROTOCOL_TYPE:
        return {}
    owners = {}
    for member in described["members"]:
        if not member["member_assignment"]:
            continue  # joined, not yet assigned
        assignment = ConsumerProtocol.ASSIGNMENT.decode(member["member_assignment"])
        for tp in assignment.partitions():
            owners[tp] = f"{member['member_id']}@{member['client_host'].lstrip('/')}"
    return owners
