"""The fault suite (issue #11): nothing acknowledged is lost, and ingestion resumes by itself.

Each test runs the whole pipeline on a private stack (a broker and a PostgreSQL
cluster of this module's own, started with the deploy scripts; a gateway with two
worker processes and ``ingest-consumer --processes 2`` of each test's own, on a
topic, consumer group and team of its own), puts it under a steady load of small
batches, injects one fault, lets the load go on until writes acknowledged after
the fault are stored, and then audits (``tests/fault_support.py``):

(a) every write the gateway acknowledged is stored in PostgreSQL exactly once
    (writes whose answer was lost may be stored, but at most once);
(b) ingestion resumed without help: writes acknowledged after the fault are stored
    within ``RESUME_DEADLINE_S`` (a minute for a connection that went silent, which
    only a timeout can detect), and nothing was dead-lettered;
(c) the gateway never answered a 5xx but 503 (its "retry" answer while a service
    is down), to writes nor to the reads made beside them.

Each test prints a ``FAULT ...`` line with its numbers (``pytest -rP`` shows them):
requests, writes acknowledged, 503s, unknowns (and how many of the refused or
unknown items were stored anyway), how long the fault lasted, the longest stretch
without a 2xx, the longest time from a 2xx until its write was stored, and when the
pipeline had caught up (acknowledging again, and every write acknowledged since the
fault stored within ``fault_support.LAG_OK_S``), counted from the fault's start.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from admin.teams import create_team
from admin.topics import ensure_topics
from runtime.settings import Settings
from schemas.migrate import migrate
from tests.conftest import settings_env
from tests.pipeline.fault_support import (
    Load,
    PrivateKafka,
    PrivatePostgres,
    Report,
    Stored,
    TcpProxy,
    alive,
    children_of,
    lost_or_duplicated,
    private_postgres,
    records_in,
    sigkill,
    stable_group,
    stored,
    summarize,
)
from tests.support import BIN, REPO, Process, eventually, free_port, wait_for_http

pytestmark = pytest.mark.services

PARTITIONS = 4
CONSUMERS = 2
GATEWAY_WORKERS = 2
# Writes acknowledged after a fault's end must be stored within this long.
RESUME_DEADLINE_S = 40.0
# How long PostgreSQL stays down, or the proxy refuses connections, in those faults.
OUTAGE_S = 3.0
# Writes acknowledged after the fault's end that must be stored before the load stops,
# and how long at least the load goes on after the fault's end.
AFTER_FAULT_WRITES = 30
MIN_LOAD_AFTER_S = 5.0
# uvicorn's spawned worker processes (not its resource tracker, should it start one).
WORKER_MARK = "spawn_main"


@pytest.fixture(scope="module")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateKafka]:
    if not (REPO / ".local/kafka/libs").exists():
        pytest.skip("no local Kafka jars to start a private broker with")
    broker = PrivateKafka(tmp_path_factory.mktemp("faults-kafka") / "kafka")
    try:
        await broker.run("start")
        yield broker
    finally:
        await broker.run("stop")


@pytest.fixture(scope="module")
async def postgres(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivatePostgres]:
    async with private_postgres(tmp_path_factory.mktemp("faults-pg")) as cluster:
        await migrate(cluster.url)
        yield cluster


@dataclass
class Stack:
    kafka: PrivateKafka
    postgres: PrivatePostgres
    settings: Settings
    team_id: int
    api_key: str
    gateway: Process
    consumers: Process
    proxy: TcpProxy | None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway_port}"

    def gateway_workers(self) -> set[int]:
        return children_of(self.gateway.popen.pid, WORKER_MARK)

    def consumer_children(self) -> set[int]:
        return children_of(self.consumers.popen.pid)

    def logs(self) -> str:
        return (
            f"--- consumers ({self.consumers.log_path}):\n{self.consumers.tail(25)}\n"
            f"--- gateway ({self.gateway.log_path}):\n{self.gateway.tail(25)}"
        )


StartStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def start_stack(
    kafka: PrivateKafka, postgres: PrivatePostgres, tmp_path: Path
) -> AsyncIterator[StartStack]:
    """Start a gateway and consumers of this test's own; ``proxied``: the consumers
    reach PostgreSQL through a ``TcpProxy``."""
    processes: list[Process] = []
    proxies: list[TcpProxy] = []

    async def start(proxied: bool = False) -> Stack:
        # A fault of an earlier test may have left a service down: start is idempotent.
        await kafka.run("start")
        await postgres.run("start")
        name = f"faults.{uuid.uuid4().hex[:8]}"
        # Copies as the environment says, as `make migrate` makes them: 3 and 2 in
        # tests/pipeline/test_broker_faults.py's cluster, 1 on a single broker.
        topics = {f"{name}.writes": PARTITIONS, f"{name}.dlq": 1}
        await ensure_topics(Settings(kafka_bootstrap_servers=kafka.bootstrap), topics)
        conn = await asyncpg.connect(postgres.url)
        try:
            team_id, key = await create_team(conn, name)
        finally:
            await conn.close()
        settings = Settings(
            kafka_bootstrap_servers=kafka.bootstrap,
            database_url=postgres.url,
            writes_topic=f"{name}.writes",
            dead_letter_topic=f"{name}.dlq",
            consumer_group=name,
            gateway_port=free_port(),
            gateway_workers=GATEWAY_WORKERS,
            publish_timeout_s=5,
            consumer_poll_timeout_ms=50,
            # A connection gone silent counts as lost after this (default 30 s).
            consumer_statement_timeout_s=5,
            metrics_port=0,
            # The faults of the main lane: no write of these tests' few customers and one
            # team is beyond a lane's rate, and no overflow worker runs beside theirs.
            lane_team_events_per_second=0,
            lane_customer_events_per_second=0,
            consumer_overflow_processes=0,
        )
        proxy = None
        consumer_env = settings_env(settings)
        if proxied:
            proxy = TcpProxy("127.0.0.1", postgres.port)
            proxies.append(proxy)
            proxy.start()
            consumer_env["DATABASE_URL"] = f"postgresql://ingest@127.0.0.1:{proxy.port}/ingest"
        consumers = Process(
            "consumers",
            [str(BIN / "ingest-consumer"), "--processes", str(CONSUMERS)],
            consumer_env,
            tmp_path,
        )
        processes.append(consumers)
        gateway = Process(
            "gateway", [str(BIN / "ingest-gateway")], settings_env(settings), tmp_path
        )
        processes.append(gateway)
        stack = Stack(kafka, postgres, settings, team_id, key, gateway, consumers, proxy)
        await wait_for_http(f"{stack.base_url}/readyz", gateway)

        async def ready() -> bool:
            for proc in (gateway, consumers):
                if proc.popen.poll() is not None:
                    raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
            return (
                len(stack.gateway_workers()) == GATEWAY_WORKERS
                and len(stack.consumer_children()) == CONSUMERS
                and await stable_group(kafka.bootstrap, name, CONSUMERS)
            )

        await eventually(ready, timeout=60, interval=0.2)
        return stack

    try:
        yield start
    finally:
        stop_all(processes)
        for proxy in proxies:
            proxy.stop()


def stop_all(processes: list[Process], timeout: float = 15) -> None:
    """SIGTERM every process at once; SIGKILL what still runs after ``timeout``, and
    their children (a parent killed first would leave its workers behind)."""
    descendants = {pid for proc in processes for pid in children_of(proc.popen.pid)}
    for proc in processes:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.popen.poll() is None for p in processes):
        time.sleep(0.1)
    for proc in processes:
        proc.stop(signal.SIGKILL)  # only if still running; closes its log either way
    for pid in descendants:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


async def exercise(
    stack: Stack,
    fault: str,
    inject: Callable[[], Awaitable[None]],
    settled: Callable[[], bool] | None = None,
    load: Load | None = None,
    deadline: float = RESUME_DEADLINE_S,
) -> Report:
    """Load, fault, load again until writes acknowledged since are stored, then the audit.

    The load goes on at least ``MIN_LOAD_AFTER_S`` past the fault's end, and until
    ``settled()`` (say, a killed process was replaced); writes acknowledged after the
    fault's end must be stored within ``deadline``. Asserts (a), (b) and (c) of
    the module's docstring; returns the numbers.
    """
    url, team = stack.postgres.url, stack.team_id
    load = load or Load(stack.base_url, stack.api_key)

    async def found_or_none() -> dict[int, Stored] | None:
        load.check()
        try:
            return await stored(url, team)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return None  # PostgreSQL is down: that is the fault

    load.start()
    marks = [("start", time.time())]
    try:

        async def flowing() -> bool:
            found = await found_or_none()
            return found is not None and len(found.keys() & load.acked.keys()) >= 60

        await eventually(flowing, timeout=30, interval=0.2)
        fault_start = time.time()
        marks.append(("flowing", fault_start))
        await inject()
        fault_end = time.time()
        marks.append(("fault over", fault_end))

        async def resumed() -> bool:
            # Writes acknowledged since the fault ended, old enough to have been applied.
            now = time.time()
            after = {s for s, a in load.acked_since(fault_end).items() if a.acked_at < now - 1}
            if len(after) < AFTER_FAULT_WRITES or now < fault_end + MIN_LOAD_AFTER_S:
                return False
            if settled is not None and not settled():
                return False
            found = await found_or_none()
            return found is not None and after <= found.keys()

        try:
            await eventually(resumed, timeout=deadline, interval=0.25)
            marks.append(("resumed", time.time()))
        except AssertionError:
            raise AssertionError(
                f"{fault}: ingestion did not resume within {deadline}s of the fault's"
                f" end ({len(load.acked_since(fault_end))} writes acknowledged since, statuses"
                f" {dict(load.statuses)}, errors {dict(load.errors)}, settled:"
                f" {settled() if settled else None})\n{stack.logs()}"
            ) from None
    finally:
        await load.stop()
        marks.append(("stopped", time.time()))

    # Everything acknowledged is eventually stored: wait for the stragglers.
    async def complete() -> dict[int, Stored] | None:
        found = await found_or_none()
        return found if found is not None and load.acked.keys() <= found.keys() else None

    try:
        found = await eventually(complete, timeout=30, interval=0.25)
    except AssertionError:
        found = await stored(url, team)
    report = summarize(fault, load, found, fault_start, fault_end)
    marks.append(("audited", time.time()))
    print(report.line())
    print(
        "  phases: "
        + ", ".join(f"{b[0]} +{b[1] - a[1]:.1f}s" for a, b in itertools.pairwise(marks))
    )

    problems = lost_or_duplicated(load, found)
    assert not problems, f"{fault}: {len(problems)} problem(s): {problems[:20]}\n{stack.logs()}"
    assert not load.unexpected, f"{fault}: answers other than 200/503: {load.unexpected[:10]}"
    assert set(load.statuses) <= {200, 503}, load.statuses
    assert not load.unexpected_reads, f"{fault}: reads answered {load.unexpected_reads[:10]}"
    assert not load.rejected, f"{fault}: items refused: {load.rejected[:5]}"
    late = {
        seq: found[seq].stored_at - a.acked_at
        for seq, a in load.acked_since(fault_end).items()
        if found[seq].stored_at - a.acked_at > deadline
    }
    assert not late, f"{fault}: writes stored more than {deadline}s after their ack"
    # An infrastructure fault taken for a bad message would have sent messages there.
    dead = await records_in(stack.kafka.bootstrap, stack.settings.dead_letter_topic)
    assert dead == 0, f"{fault}: {dead} message(s) dead-lettered\n{stack.logs()}"
    return report


async def test_sigkill_of_a_consumer_child(start_stack: StartStack) -> None:
    stack = await start_stack()
    before = stack.consumer_children()
    victim = min(before)

    def replaced() -> bool:
        now = stack.consumer_children()
        return len(now) == CONSUMERS and victim not in now

    async def inject() -> None:
        await sigkill(victim)

    await exercise(stack, "SIGKILL of a consumer child", inject, settled=replaced)
    assert len(stack.consumer_children() & before) == CONSUMERS - 1  # the other one ran on


async def test_sigkill_of_the_broker_then_start(start_stack: StartStack) -> None:
    stack = await start_stack()
    kafka = stack.kafka

    async def inject() -> None:
        await sigkill(kafka.pid(), ports=(kafka.port, kafka.controller_port))
        await kafka.run("start")

    report = await exercise(stack, "SIGKILL of the broker, then start", inject)
    # The gateway noticed: it refused (503) or lost (unknown) writes while the broker was away.
    assert report.responses_503 + report.unknown_requests > 0, report


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart(start_stack: StartStack, mode: str) -> None:
    stack = await start_stack()
    postgres = stack.postgres

    async def inject() -> None:
        await postgres.stop(mode)
        await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for a condition
        await postgres.run("start")

    await exercise(stack, f"PostgreSQL stopped -m {mode}, {OUTAGE_S:.0f} s down, start", inject)
    if mode == "immediate":
        assert "database system was not properly shut down" in postgres.server_log(200)


async def test_sigkill_of_a_gateway_worker(start_stack: StartStack) -> None:
    stack = await start_stack()
    before = stack.gateway_workers()
    victim = min(before)

    def replaced() -> bool:
        now = stack.gateway_workers()
        return len(now) == GATEWAY_WORKERS and victim not in now

    async def inject() -> None:
        await sigkill(victim)

    # A new connection per request, from more clients: both workers have requests in
    # flight when one is killed.
    load = Load(stack.base_url, stack.api_key, senders=8, keepalive=False)
    await exercise(stack, "SIGKILL of a gateway worker", inject, settled=replaced, load=load)
    assert len(stack.gateway_workers() & before) == GATEWAY_WORKERS - 1


@pytest.mark.parametrize("how", ["reset", "silent"])
async def test_consumers_postgres_connections_cut(start_stack: StartStack, how: str) -> None:
    """``reset``: every connection of the consumers to PostgreSQL is reset, and new
    ones too for OUTAGE_S. ``silent``: every open connection goes silent for good (the
    server's host vanished); new connections work."""
    stack = await start_stack(proxied=True)
    proxy = stack.proxy
    assert proxy is not None
    broken: list[int] = []

    async def inject() -> None:
        if how == "reset":
            broken.append(proxy.cut())
            await asyncio.sleep(OUTAGE_S)  # connections refused meanwhile
            proxy.restore()
        else:
            broken.append(proxy.freeze())

    accepted_before = proxy.accepted
    fault = f"consumers' PostgreSQL connections {'reset' if how == 'reset' else 'gone silent'}"
    # A connection that went silent can only be given up on by a timeout: a minute.
    await exercise(stack, fault, inject, deadline=RESUME_DEADLINE_S if how == "reset" else 60)
    print(f"  proxy: {broken[0]} connection(s) broken, {proxy.refused} refused while cut")
    assert broken[0] >= 1, "the consumers held no connection to break"
    assert proxy.accepted > accepted_before  # the consumers reconnected
