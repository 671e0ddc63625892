"""With the broker down the gateway answers 503, never a false success.

A second, private Kafka broker is started for this test (the deploy script with
its own directory and ports) so that stopping it does not disturb other tests.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from runtime.settings import Settings
from tests.conftest import Team, create_topics, private_gateway
from tests.support import REPO, eventually, free_port

KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


class PrivateBroker:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "KAFKA_DIR": str(directory),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_HEAP_OPTS": "-Xmx384m -Xms128m",
        }

    def run(self, command: str) -> None:
        subprocess.run(["bash", str(KAFKA_SH), command], env=self.env, check=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ and not (REPO / ".local/kafka/libs").exists():
        pytest.skip("no local Kafka jars to start a private broker with")
    b = PrivateBroker(tmp_path / "kafka")
    b.run("start")
    yield b
    b.run("stop")


@pytest.fixture
async def outage_gateway(
    broker: PrivateBroker, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[str, PrivateBroker]]:
    topic = f"outage.{uuid.uuid4().hex[:8]}"
    await create_topics(broker.bootstrap, {topic: 1})
    async with private_gateway(
        settings,
        tmp_path,
        "outage-gateway",
        kafka_bootstrap_servers=broker.bootstrap,
        writes_topic=topic,
        publish_timeout_s=3,
    ) as (base, _):
        yield base, broker


async def test_stopped_broker_gives_503_not_a_false_success(
    outage_gateway: tuple[str, PrivateBroker], team: Team
) -> None:
    base, broker = outage_gateway
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        path = "/api/1.0/customer/outage@example.com"
        ok = await http.post(path, json={"a": 1}, headers=team.headers)
        assert ok.status_code == 200

        broker.run("stop")
        down = await http.post(path, json={"a": 2}, headers=team.headers)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"
        assert down.json() == {
            "error": "Service unavailable: the write was not accepted, please retry"
        }
        event = await http.post(
            "/api/1.0/events/e/outage@example.com/1", json={}, headers=team.headers
        )
        assert event.status_code == 503


async def test_once_the_broker_is_known_gone_writes_fail_fast(
    outage_gateway: tuple[str, PrivateBroker], team: Team
) -> None:
    """No write waits the whole PUBLISH_TIMEOUT_S (3 s here) for an ack that cannot come."""
    base, broker = outage_gateway
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        broker.run("stop")

        async def known_gone() -> bool:
            return (await http.get("/readyz")).json()["kafka"] is False

        await eventually(known_gone, timeout=10)
        for _ in range(5):
            started = time.monotonic()
            answer = await http.post(
                "/api/1.0/customer/fast@example.com", json={"a": 1}, headers=team.headers
            )
            assert answer.status_code == 503
            assert time.monotonic() - started < 1.0
