"""Every PromQL expression of the Grafana dashboard returns data from a real Prometheus
scraping a running gateway and consumer under a little load.

The gateway, the consumer (a supervisor and its worker) and Prometheus are the
test's own, on a topic, a consumer group and a database of its own. The load makes
each thing the dashboard shows happen at least once: accepted writes (single and
a batch), a refused one, a dead letter (a record that is not JSON), a retry (a
batch's statement times out behind a table lock) and a worker restart (SIGKILL).
Grafana is not packaged by Debian; its ``$__rate_interval`` is replaced by a
window of a few scrape intervals, as Grafana would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
import pytest

from admin.teams import create_team
from runtime.settings import Settings
from schemas.migrate import migrate
from tests.conftest import (
    PARTITIONS,
    create_topics,
    private_gateway,
    scratch_database,
    settings_env,
)
from tests.consumers.test_dead_letter_limit import produce_garbage
from tests.deploy.prometheus import Prometheus, config_for, ensure_prometheus, prometheus
from tests.support import BIN, REPO, Process, children_of, eventually, free_port

pytestmark = pytest.mark.services

DASHBOARD = REPO / "deploy" / "observability" / "grafana" / "dashboards" / "customer-ingest.json"
SCRAPE_INTERVAL = "1s"
RATE_WINDOW = "5s"  # what Grafana's $__rate_interval would be for a 1 s scrape interval
DEADLINE_S = 30
T = TypeVar("T")


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard, Grafana's interval
    variables replaced."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_WINDOW))
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_the_dashboard_queries_prometheus_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


async def test_every_dashboard_expression_returns_data(
    service_urls: tuple[str, str], run_id: str, log_dir: Path, tmp_path: Path
) -> None:
    ensure_prometheus()
    bootstrap = service_urls[0]
    writes, dead = f"test.{run_id}.dash", f"test.{run_id}.dash.dlq"
    await create_topics(bootstrap, {writes: PARTITIONS, dead: 1})
    ports = {"gateway": free_port(), "consumer": free_port(), "supervisor": free_port()}
    async with scratch_database(service_urls[1], f"ingest_dash_{run_id}") as database_url:
        await migrate(database_url)
        settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            database_url=database_url,
            writes_topic=writes,
            dead_letter_topic=dead,
            consumer_group=f"test.{run_id}.dash",
            consumer_poll_timeout_ms=50,
            # A batch held behind a lock times out soon, and is retried.
            consumer_statement_timeout_s=1,
        )
        env = settings_env(
            settings,
            metrics_port=ports["consumer"],
            supervisor_metrics_port=ports["supervisor"],
            consumer_overflow_processes=0,  # one worker, whose restart the test watches
        )
        consumer = Process("dash-consumer", [str(BIN / "ingest-consumer")], env, log_dir)
        targets = {
            "ingest-gateway": f"127.0.0.1:{ports['gateway']}",
            "ingest-consumer": f"127.0.0.1:{ports['consumer']}",
            "ingest-consumer-supervisor": f"127.0.0.1:{ports['supervisor']}",
        }
        try:
            await restart_the_worker(consumer)
            async with (
                private_gateway(
                    settings, log_dir, "dash-gateway", gateway_metrics_port=ports["gateway"]
                ) as (base, _),
                prometheus(config_for(targets, SCRAPE_INTERVAL), tmp_path) as server,
            ):
                await send_load(base, database_url, bootstrap, writes, ports["consumer"])
                deadline = time.monotonic() + DEADLINE_S
                down = await eventually_up(server, targets, deadline)
                missing = await eventually_all_data(server, deadline)
        finally:
            consumer.stop()
    problems = [f"target down: {t}" for t in down]
    problems += [f"no data: [{title}] {expression}" for title, expression in missing]
    assert not problems, "\n".join(
        [*problems, "(counters of rare events must be exported at 0 for their known labels)"]
    )


async def restart_the_worker(consumer: Process) -> None:
    """SIGKILL the consumer's worker as soon as it exists (before it joins the group,
    which would then wait for its session to time out); the supervisor starts another."""
    (worker,) = await eventually(lambda: _children(consumer), timeout=20, interval=0.02)
    os.kill(worker, signal.SIGKILL)

    async def replaced() -> set[int] | None:
        return (await _children(consumer) or set()) - {worker} or None

    await eventually(replaced, timeout=20)


async def _children(process: Process) -> set[int] | None:
    if process.popen.poll() is not None:
        raise AssertionError(f"{process.name} exited:\n{process.tail()}")
    return children_of(process.popen.pid) or None


async def send_load(
    base: str, database_url: str, bootstrap: str, topic: str, consumer_port: int
) -> None:
    """Accepted writes, a refused one, a batch, a dead letter and a retried batch."""
    conn = await asyncpg.connect(database_url)
    try:
        _, key = await create_team(conn, f"dash-{uuid.uuid4().hex[:8]}")
        async with httpx.AsyncClient(base_url=base, headers={"X-API-KEY": key}) as http:
            # The first waits until the consumers applied it: they are consuming.
            for i in range(5):
                wait = "?wait=true" if i == 0 else ""
                url = f"/api/1.0/customer/dash-{i}@example.com{wait}"
                answer = await http.post(url, data={"plan": "gold"}, timeout=30)
                assert answer.status_code == 200, answer.text
            refused = await http.post("/api/1.0/customer/not-an-email", data={"plan": "x"})
            assert refused.status_code == 400, refused.text
            items = [
                {"type": "event", "email": f"dash-{i}@example.com", "eventName": "view"}
                for i in range(20)
            ]
            batch = await http.post("/api/1.0/batch", json={"items": items})
            assert batch.status_code == 200, batch.text
            await produce_garbage(bootstrap, topic, count=1)
            async with conn.transaction():
                # The consumer's next batch waits for this lock beyond its
                # statement timeout, and is retried once it is released.
                await conn.execute("LOCK TABLE processed_messages IN ACCESS EXCLUSIVE MODE")
                retried = await http.post("/api/1.0/customer/dash-retry@example.com")
                assert retried.status_code == 200, retried.text
                await eventually(lambda: _retried(consumer_port), timeout=20)
    finally:
        await conn.close()


async def _retried(port: int) -> bool:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return any(
        line.startswith("ingest_consumer_retries_total{") and float(line.split()[-1]) > 0
        for line in text.splitlines()
    )


async def until_none_left(left: Callable[[], Awaitable[list[T]]], deadline: float) -> list[T]:
    """Poll ``left`` every half scrape interval until it is empty or ``deadline``
    (``time.monotonic()``) passed; what is left then."""
    while True:
        found = await left()
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def eventually_up(server: Prometheus, jobs: Iterable[str], deadline: float) -> list[str]:
    """The targets of ``jobs`` not scraped successfully, once every one is or the
    deadline passed."""

    async def down() -> list[str]:
        targets = await server.targets()
        found = {t["labels"]["job"] for t in targets}
        return [f"{job}: not discovered yet" for job in jobs if job not in found] + [
            f"{t['labels']['job']} {t['scrapeUrl']}: {t['lastError'] or t['health']}"
            for t in targets
            if t["health"] != "up"
        ]

    return await until_none_left(down, deadline)


async def eventually_all_data(server: Prometheus, deadline: float) -> list[tuple[str, str]]:
    """The dashboard's expressions that returned no data, once each did or the
    deadline passed."""
    missing = dashboard_expressions()

    async def still_missing() -> list[tuple[str, str]]:
        nonlocal missing
        missing = [(title, expr) for title, expr in missing if not await server.query(expr)]
        return missing

    return await until_none_left(still_missing, deadline)
