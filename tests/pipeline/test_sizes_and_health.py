"""Sizes that agree end to end, a producer that recovers, and honest health checks.

- A write whose message would not fit in a Kafka record is a 413 in the API's own
  error format, before it reaches the producer.
- When the broker still refuses a record for good, the gateway replaces its
  producer, so one bad write does not block the partition for everyone after it.
- ``/healthz`` is liveness, ``/readyz`` says whether Kafka and PostgreSQL answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ingest_gateway.write.publisher import RECORD_OVERHEAD_BYTES
from runtime.settings import Settings
from tests.conftest import Team, private_gateway, settings_env
from tests.support import BIN, Process, eventually, free_port


def address() -> str:
    return f"size-{uuid.uuid4().hex[:10]}@example.com"


async def test_a_write_too_large_for_a_kafka_record_is_413_in_each_format(
    http: httpx.AsyncClient, settings: Settings, team: Team
) -> None:
    # Below the body limit, above what one Kafka record holds.
    text = "x" * (settings.kafka_message_max_bytes + 1024)
    assert len(text) < settings.max_body_bytes
    customer = await http.post(
        f"/api/1.0/customer/{address()}", json={"bio": text}, headers=team.headers
    )
    assert customer.status_code == 413, customer.text
    assert "limit of" in customer.json()["error"]
    user = address()
    created = await http.post(f"/api/1.0/customer/{user}?wait=true", headers=team.headers)
    assert created.status_code == 200
    event = await http.post(
        "/api/v1/event/",
        json={"user": {"email": user}, "event": {"update": {"bio": text}}},
        headers=team.headers,
    )
    assert event.status_code == 413, event.text
    assert "limit of" in event.json()["errors"][0]["message"]
    # One below the limit still goes through.
    fits = "x" * (settings.kafka_message_max_bytes - RECORD_OVERHEAD_BYTES - 1024)
    ok = await http.post(
        f"/api/1.0/customer/{address()}?wait=true", json={"bio": fits}, headers=team.headers
    )
    assert ok.status_code == 200, ok.text


@pytest.fixture
async def gateway_over_small_topic(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[str, Process]]:
    """A gateway that believes records of 1 MiB fit, on a topic that takes 64 KiB.

    The broker refuses the large record for good (``MessageSizeTooLarge``), the
    non-retriable error the gateway must recover from.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"small.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=1,
                    replication_factor=1,
                    topic_configs={"max.message.bytes": str(64 * 1024)},
                )
            ]
        )
    finally:
        await admin.close()
    async with private_gateway(
        settings, tmp_path, "small-topic-gateway", writes_topic=topic, publish_timeout_s=5
    ) as gateway:
        yield gateway


async def test_after_a_record_the_broker_refused_the_partition_still_takes_writes(
    gateway_over_small_topic: tuple[str, Process], team: Team
) -> None:
    base, proc = gateway_over_small_topic
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        # The refused record travels among others to the same partition, in flight
        # together: the case that left aiokafka's sequence numbers out of step.
        big = http.post(
            f"/api/1.0/customer/{address()}", json={"bio": "x" * 200_000}, headers=team.headers
        )
        small = [
            http.post(f"/api/1.0/customer/{address()}", json={"a": 0}, headers=team.headers)
            for _ in range(20)
        ]
        refused, *others = await asyncio.gather(big, *small)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert {answer.status_code for answer in others} <= {200, 503}

        async def small_write_accepted() -> bool:
            answer = await http.post(
                f"/api/1.0/customer/{address()}", json={"a": 1}, headers=team.headers
            )
            assert answer.status_code in (200, 503), answer.text
            return answer.status_code == 200

        # Within a few seconds (a new producer), not never (OutOfOrderSequenceNumber).
        await eventually(small_write_accepted, timeout=20, interval=0.2)
        for _ in range(5):
            ok = await http.post(
                f"/api/1.0/customer/{address()}", json={"a": 2}, headers=team.headers
            )
            assert ok.status_code == 200, ok.text
    assert "replacing the Kafka producer" in proc.log_path.read_text()


async def test_healthz_is_liveness_and_readyz_checks_both_services(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as http:
        assert (await http.get("/healthz")).json() == {"alive": True}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"kafka": True, "postgres": True}


@pytest.fixture
async def gateway_without_postgres(settings: Settings, tmp_path: Path) -> AsyncIterator[str]:
    """A gateway whose PostgreSQL is a closed port: it starts, and says it is not ready."""
    dead_db = f"postgresql://ingest@127.0.0.1:{free_port()}/ingest"
    async with private_gateway(
        settings, tmp_path, "no-postgres-gateway", ready="/healthz", database_url=dead_db
    ) as (base, _):
        yield base


async def test_without_postgres_every_surface_answers_503_not_500(
    gateway_without_postgres: str, team: Team
) -> None:
    async with httpx.AsyncClient(base_url=gateway_without_postgres, timeout=30) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"kafka": True, "postgres": False}
        calls = [
            (
                "POST",
                f"/api/1.0/customer/{address()}",
                {"error": "Service unavailable: please retry"},
            ),
            (
                "GET",
                f"/api/1.0/customer/{address()}",
                {"error": "Service unavailable: please retry"},
            ),
            ("POST", "/api/1.0/batch", {"error": "Service unavailable: please retry"}),
            (
                "POST",
                "/api/v1/event/",
                {
                    "errors": [
                        {
                            "message": "Service unavailable: please retry",
                            "description": "The store did not answer; nothing was accepted.",
                        }
                    ]
                },
            ),
            (
                "GET",
                "/rest-api/enterprise-interface/v1.0/events",
                {
                    "error": {
                        "code": 503,
                        "message": "Service unavailable: please retry",
                        "description": "The store did not answer; nothing was accepted.",
                    }
                },
            ),
        ]
        for method, path, body in calls:
            answer = await http.request(method, path, json={}, headers=team.headers)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["retry-after"] == "1"
            assert answer.json() == body, path


async def test_a_consumer_serves_liveness_and_readiness_beside_its_metrics(
    consumer_metrics_port: int, gateway: str
) -> None:
    base = f"http://127.0.0.1:{consumer_metrics_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:

        async def ready() -> httpx.Response | None:
            answer = await http.get("/readyz")
            return answer if answer.status_code == 200 else None

        assert (await eventually(ready)).json() == {"kafka": True, "postgres": True}
        assert (await http.get("/healthz")).json() == {"alive": True}
        assert "ingest_consumer_messages_total" in (await http.get("/metrics")).text
        assert (await http.get("/nothing")).status_code == 404


async def test_a_consumer_without_postgres_is_alive_but_not_ready(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    dead_db = f"postgresql://ingest@127.0.0.1:{free_port()}/ingest"
    env = settings_env(
        settings,
        database_url=dead_db,
        metrics_port=port,
        consumer_group=f"no-postgres-{uuid.uuid4().hex[:8]}",
    )
    consumer = Process("no-postgres-consumer", [str(BIN / "ingest-consumer")], env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def answered() -> httpx.Response | None:
                try:
                    return await http.get("/readyz")
                except httpx.TransportError:
                    return None

            not_ready = await eventually(answered)
            assert not_ready.status_code == 503
            assert not_ready.json() == {"kafka": True, "postgres": False}
            assert (await http.get("/healthz")).status_code == 200
        assert consumer.popen.poll() is None, consumer.tail()
    finally:
        consumer.stop()
