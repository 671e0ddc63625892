"""Runtime controls per team and the overflow lane (issue #21, points 2 and 3), against
the real gateway (two worker processes), Kafka and PostgreSQL: ``ingest-admin
control`` takes effect on every gateway process within seconds, no restart; each
control does what it says, is logged, and is counted in the metrics."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from runtime.settings import Settings
from schemas.messages import WriteMessage, decode_record
from tests.admin.test_admin import admin
from tests.conftest import PARTITIONS, Team, create_topics, private_gateway, settings_env
from tests.support import BIN, Process, eventually, free_port, stored_customer


@dataclass(frozen=True)
class Stack:
    settings: Settings
    base: str
    gateway: Process
    metrics: str

    def admin(self, *args: str) -> str:
        done = admin(self.settings.database_url, *args, env=settings_env(self.settings))
        assert done.returncode == 0, done.stderr
        return done.stdout

    async def logged(self, text: str, count: int) -> None:
        """``text`` in the gateway's log ``count`` times (once per worker process)."""

        async def enough() -> bool:
            return self.gateway.log_path.read_text(errors="replace").count(text) >= count

        await eventually(enough, timeout=20, interval=0.1)

    async def records(self, topic: str) -> int:
        """Records in ``topic`` so far (its partitions' end offsets)."""
        reader = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await reader.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            return sum((await reader.end_offsets(partitions)).values())
        finally:
            await reader.stop()

    async def counts(self) -> dict[str, int]:
        return {t: await self.records(t) for t in self.topics}

    @property
    def topics(self) -> tuple[str, str, str]:
        s = self.settings
        return s.writes_topic, s.writes_overflow_topic, s.dead_letter_topic

    async def metric(self, name: str, label: str) -> float:
        async with httpx.AsyncClient() as http:
            text = (await http.get(self.metrics)).text
        found = re.search(rf"^{name}\{{{label}\}} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def own(settings: Settings, run_id: str) -> Settings:
    name = f"test.{run_id}.controls.{uuid.uuid4().hex[:6]}"
    return settings.model_copy(
        update={
            "writes_topic": f"{name}.writes",
            "writes_overflow_topic": f"{name}.overflow",
            "dead_letter_topic": f"{name}.dlq",
            "consumer_group": f"{name}.consumers",
            "metrics_port": 0,
        }
    )


@pytest.fixture(scope="module")
def own_consumer(own: Settings, log_dir: Path) -> Iterator[Process]:
    """Both lanes' workers on the module's topics."""
    proc = Process("controls-consumer", [str(BIN / "ingest-consumer")], settings_env(own), log_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def stack(own: Settings, own_consumer: Process, log_dir: Path) -> AsyncIterator[Stack]:
    await create_topics(
        own.kafka_bootstrap_servers,
        {own.writes_topic: PARTITIONS, own.writes_overflow_topic: PARTITIONS},
    )
    await create_topics(own.kafka_bootstrap_servers, {own.dead_letter_topic: PARTITIONS})
    metrics_port = free_port()
    async with private_gateway(
        own,
        log_dir,
        "controls-gateway",
        gateway_workers=2,
        quota_refresh_s=0.2,
        gateway_metrics_port=metrics_port,
        lane_customer_events_per_second=5,
    ) as (base, proc):
        yield Stack(own, base, proc, f"http://127.0.0.1:{metrics_port}/metrics")


async def write(http: httpx.AsyncClient, team: Team, address: str, wait: bool = False) -> str:
    """A 000 write of the customer ``address``; its message id."""
    answer = await http.post(
        f"/api/1.0/customer/{address}{'?wait=true' if wait else ''}",
        json={"plan": "gold"},
        headers=team.headers,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["X-Message-Id"]


async def test_drop_answers_and_counts_but_publishes_nothing(stack: Stack, team: Team) -> None:
    said = stack.admin("control", str(team.id), "drop")
    assert said.startswith(f"team {team.id}: drop (was no controls)")
    await stack.logged(f"team {team.id}: controls now drop (were none)", count=2)
    before = await stack.counts()
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        for n in range(4):  # reaching both worker processes, whichever answers
            await write(http, team, f"dropped-{n}@example.com", wait=True)
    assert await stack.counts() == before
    await eventually(
        lambda: _at_least(stack, "ingest_gateway_controlled_messages_total", 'control="drop"', 4),
        timeout=10,
        interval=0.2,
    )
    assert await stack.metric("ingest_gateway_team_controls", 'control="drop"') >= 1


async def test_dead_letter_keeps_the_writes_in_the_dead_letter_topic(
    stack: Stack, team: Team
) -> None:
    stack.admin("control", str(team.id), "dead-letter")
    await stack.logged(f"team {team.id}: controls now dead_letter (were none)", count=2)
    before = await stack.counts()
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        message_id = await write(http, team, "letter@example.com")
    after = await stack.counts()
    writes, overflow, dead = stack.topics
    assert after[dead] == before[dead] + 1
    assert (after[writes], after[overflow]) == (before[writes], before[overflow])
    letters = await read_all(stack.settings, dead)
    (reason, letter) = next(
        (dict(r.headers)["reason"], decoded)
        for r in letters
        if isinstance(decoded := decode_record(r.value), WriteMessage) and decoded.id == message_id
    )
    assert b"dead_letter control" in reason
    assert letter.identifiers.email == "letter@example.com"
    await eventually(
        lambda: _at_least(
            stack, "ingest_gateway_controlled_messages_total", 'control="dead_letter"', 1
        ),
        timeout=10,
        interval=0.2,
    )


async def test_overflow_sends_every_write_to_the_overflow_lane_where_it_is_applied(
    stack: Stack, db: asyncpg.Pool, team: Team
) -> None:
    stack.admin("control", str(team.id), "overflow")
    await stack.logged(f"team {team.id}: controls now overflow (were none)", count=2)
    before = await stack.counts()
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        await write(http, team, "lane@example.com", wait=True)  # applied: waited for
    writes, overflow, _ = stack.topics
    after = await stack.counts()
    assert (after[writes], after[overflow]) == (before[writes], before[overflow] + 1)
    assert await stored_customer(db, team, "lane@example.com") is not None
    await eventually(
        lambda: _at_least(
            stack, "ingest_gateway_controlled_messages_total", 'control="overflow"', 1
        ),
        timeout=10,
        interval=0.2,
    )

    stack.admin("control", str(team.id), "none")
    await stack.logged(f"team {team.id}: controls now none (were overflow)", count=2)
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        await write(http, team, "back@example.com", wait=True)
    assert (await stack.records(writes)) == after[writes] + 1


async def test_skip_identity_applies_a_write_to_its_first_identifier_without_merging(
    stack: Stack, db: asyncpg.Pool, team: Team
) -> None:
    phone = "+14155550100"

    async def batch(http: httpx.AsyncClient, *items: dict[str, Any]) -> None:
        answer = await http.post(
            "/api/1.0/batch?wait=true", json={"items": list(items)}, headers=team.headers
        )
        assert answer.status_code == 200, answer.text

    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        await batch(
            http,
            {"type": "customer", "email": "a@example.com", "phone": phone, "attributes": {}},
            {"type": "customer", "email": "b@example.com", "attributes": {}},
        )
        stack.admin("control", str(team.id), "skip-identity")
        await stack.logged(f"team {team.id}: controls now skip_identity (were none)", count=2)
        # Names b's email and a's phone: without the control, a and b would merge.
        await batch(
            http,
            {
                "type": "customer",
                "email": "b@example.com",
                "phone": phone,
                "attributes": {"plan": "silver"},
            },
        )
    a = await stored_customer(db, team, "a@example.com")
    b = await stored_customer(db, team, "b@example.com")
    assert a is not None and b is not None and a["id"] != b["id"]
    assert orjson.loads(b["attributes"]) == {"plan": "silver"}
    phone_holder = await db.fetchval(
        "SELECT customer_id FROM customer_identifiers"
        " WHERE team_id = $1 AND kind = 'phone' AND value = $2",
        team.id,
        phone,
    )
    assert phone_holder == a["id"]
    await eventually(
        lambda: _at_least(
            stack, "ingest_gateway_controlled_messages_total", 'control="skip_identity"', 1
        ),
        timeout=10,
        interval=0.2,
    )


async def test_a_hot_customer_key_overflows_while_the_teams_others_stay(
    stack: Stack, db: asyncpg.Pool, team: Team
) -> None:
    """The gateway's lane rate for one customer key is 5 events a second here."""
    writes, overflow, _ = stack.topics
    before = await stack.counts()
    hot = [
        {"type": "event", "email": "fleet@example.com", "eventName": "ping", "body": {"n": n}}
        for n in range(20)
    ]
    others = [
        {"type": "customer", "email": f"o{n}@example.com", "attributes": {}} for n in range(3)
    ]
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as http:
        answer = await http.post(
            "/api/1.0/batch?wait=true", json={"items": others + hot}, headers=team.headers
        )
    assert answer.status_code == 200, answer.text
    after = await stack.counts()
    assert after[overflow] > before[overflow]  # the hot key's writes beyond 5
    assert after[writes] > before[writes]  # the others, and the hot key's first 5
    fleet = await stored_customer(db, team, "fleet@example.com")
    assert fleet is not None
    events = await db.fetchval(
        "SELECT count(*) FROM events WHERE team_id = $1 AND customer_id = $2", team.id, fleet["id"]
    )
    assert events == 20
    for n in range(3):
        assert await stored_customer(db, team, f"o{n}@example.com") is not None
    await eventually(
        lambda: _at_least(stack, "ingest_gateway_overflow_messages_total", 'reason="customer"', 1),
        timeout=10,
        interval=0.2,
    )


async def test_list_controls_shows_each_team_with_controls(stack: Stack, team: Team) -> None:
    stack.admin("control", str(team.id), "skip-identity", "overflow")
    listed = stack.admin("list-controls")
    assert any(
        line.startswith(f"{team.id}  ") and "overflow, skip-identity" in line
        for line in listed.splitlines()
    )
    assert (
        stack.admin("control", str(team.id)).strip() == f"team {team.id}: overflow, skip-identity"
    )
    refused = admin(
        stack.settings.database_url,
        "control",
        str(team.id),
        "drop",
        "dead-letter",
        env=settings_env(stack.settings),
    )
    assert refused.returncode == 1 and "exclude each other" in refused.stderr


async def _at_least(stack: Stack, name: str, label: str, value: float) -> bool:
    return await stack.metric(name, label) >= value


async def read_all(settings: Settings, topic: str) -> list[Any]:
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(partitions)
        ends = await reader.end_offsets(partitions)
        records: list[Any] = []
        while sum(ends.values()) > len(records):
            for batch in (await reader.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await reader.stop()
