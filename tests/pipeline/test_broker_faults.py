"""Broker faults on a replicated cluster (issue #19): nothing acknowledged is lost.

The fault suite of ``test_faults.py`` (its stack, load and lost-write audit, through
its ``start_stack`` and ``exercise``) on a cluster of three Kafka nodes, each a broker
and a controller, started with ``deploy/kafka/kafka.sh`` (``KAFKA_BROKERS=3``) once for
the module; every test has a topic, a consumer group and a team of its own. Topics
get 3 copies and ``min.insync.replicas=2``: the values ``kafka.sh client-env`` gives a
3-node cluster, which ``make run KAFKA_BROKERS=3`` writes to ``.local/services.env``.
Node 3 names a ``TcpProxy``'s port to the clients as its address, so the clients reach
it only through the proxy while the brokers replicate over a listener of their own.

Besides the audit of ``exercise`` ((a) every acknowledged write stored exactly once,
(b) ingestion resumed without help, (c) no answer but 200 and 503), every test checks
that each 503 carried ``Retry-After``. A restarted broker's figures are printed under
the ``FAULT`` line (``pytest -rP``): how long after its start it was back in the
cluster (registered and unfenced), and when every partition of the cluster had all
its copies in sync again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from tests.pipeline import test_faults
from tests.pipeline.fault_support import (
    KAFKA_SH,
    Load,
    PrivateCluster,
    Report,
    run_script,
    sigkill,
    under_replicated,
)
from tests.pipeline.test_faults import (
    OUTAGE_S,
    RESUME_DEADLINE_S,
    Stack,
    StartStack,
    exercise,
)
from tests.support import REPO, eventually

pytestmark = pytest.mark.services

# The fault suite's fixtures, shared: its stack (gateway, consumers, topic, team) on
# this module's `kafka`, and its private PostgreSQL.
start_stack = test_faults.start_stack
postgres = test_faults.postgres

NODES = 3
PROXIED = 3  # the node the clients reach only through the proxy
# Kafka's broker.session.timeout.ms: the controller takes a crashed broker out of the
# cluster, and out of every partition's in-sync replicas, only after this long;
# acks=all writes to any partition that broker copies wait for it until then.
SESSION_TIMEOUT_S = 9.0
# From a broker's start until every copy is in sync again.
CATCH_UP_DEADLINE_S = 60.0
# A connection gone silent is given up on only by a request's timeout: the consumers'
# is aiokafka's default, 40 s (consumers/worker.py sets none). When it was the one to
# the group's coordinator, commits and heartbeats waited that long, the group
# rebalances and the batches since the last commit come again: writes acknowledged
# after the fault may take longer than a minute to be stored.
SILENT_DEADLINE_S = 90.0
# Seconds after the brokers are gone within which an acknowledgement may still arrive
# for a write they took before (an answer on its way).
IN_FLIGHT_S = 1.0


def libs() -> Path:
    return Path(os.environ.get("KAFKA_LIBS_DIR", REPO / ".local/kafka/libs"))


@pytest.fixture(scope="module")
async def kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateCluster]:
    """The module's cluster, a proxy in front of node ``PROXIED``."""
    if not libs().exists():
        pytest.skip("no local Kafka jars to start a private cluster with")
    cluster = PrivateCluster(tmp_path_factory.mktemp("brokers") / "kafka", nodes=NODES)
    cluster.proxy_clients(PROXIED)
    try:
        with pytest.MonkeyPatch.context() as env:
            # The replication settings of a 3-node cluster, for the topics start_stack
            # makes through the settings (as `make migrate` does).
            for name, value in await client_env(cluster):
                if name != "KAFKA_BOOTSTRAP_SERVERS":
                    env.setenv(name, value)
            await cluster.run("start")
            yield cluster
    finally:
        try:
            await cluster.run("stop")
        finally:
            cluster.stop_proxies()


async def client_env(cluster: PrivateCluster) -> list[tuple[str, str]]:
    """``kafka.sh client-env``'s variables for this cluster."""
    out = cluster.directory.parent / "client-env.txt"
    await run_script(["bash", str(KAFKA_SH), "client-env"], cluster.env, out, timeout=30)
    found = []
    for line in out.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        found.append((name, value))
    assert ("KAFKA_REPLICATION_FACTOR", "3") in found, found
    assert ("KAFKA_MIN_INSYNC_REPLICAS", "2") in found, found
    return found


class Restarts:
    """Starts stopped brokers again and times them: back in the cluster (``kafka.sh
    start`` returned: registered and unfenced), then every copy in sync (no partition
    of the cluster under-replicated)."""

    def __init__(self, cluster: PrivateCluster) -> None:
        self.cluster = cluster
        self.rejoined_s: list[float] = []
        self.in_sync_s: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, *nodes: int) -> float:
        """Start ``nodes`` (all stopped ones if none named); returns when the start began."""
        began = time.monotonic()
        if nodes == ():
            await self.cluster.run("start")
        else:
            await asyncio.gather(*(self.cluster.run_node("start", node) for node in nodes))
        self.rejoined_s.append(time.monotonic() - began)
        return began

    async def in_sync(self, began: float) -> None:
        """Wait until no partition is under-replicated; records how long since ``began``."""

        async def caught_up() -> bool:
            try:
                return not await under_replicated(self.cluster.bootstrap)
            except (KafkaError, OSError, TimeoutError):  # no broker answered: ask again
                return False

        await eventually(caught_up, timeout=CATCH_UP_DEADLINE_S, interval=0.25)
        self.in_sync_s.append(time.monotonic() - began)

    def in_sync_meanwhile(self, began: float) -> None:
        """``in_sync`` in the background, while the load goes on (``done`` tells)."""
        self._task = asyncio.create_task(self.in_sync(began))

    def done(self) -> bool:
        if self._task is None or not self._task.done():
            return False
        self._task.result()  # raises what stopped it
        return True

    def line(self) -> str:
        def seconds(values: list[float]) -> str:
            return ", ".join(f"{value:.1f}" for value in values)

        return (
            f"  brokers back in the cluster {seconds(self.rejoined_s)} s after their start,"
            f" every copy in sync after {seconds(self.in_sync_s)} s"
        )


@dataclass
class BrokerFault:
    """One test's stack on the cluster, its load and the brokers it restarts."""

    stack: Stack
    cluster: PrivateCluster
    load: Load
    restarts: Restarts

    @classmethod
    async def start(cls, start_stack: StartStack) -> BrokerFault:
        stack = await start_stack()
        assert isinstance(stack.kafka, PrivateCluster)
        load = Load(stack.base_url, stack.api_key)
        return cls(stack, stack.kafka, load, Restarts(stack.kafka))

    async def exercise(
        self,
        fault: str,
        inject: Callable[[], Awaitable[None]],
        settled: Callable[[], bool] | None = None,
        deadline: float = RESUME_DEADLINE_S,
    ) -> Report:
        """The fault suite's ``exercise`` (load, fault, audit), then the restarts'
        figures and the check that every 503 carried ``Retry-After``."""
        report = await exercise(self.stack, fault, inject, settled, self.load, deadline)
        if self.restarts.rejoined_s:
            print(self.restarts.line())
        assert not self.load.without_retry_after, self.load.without_retry_after[:5]
        return report


async def kill(cluster: PrivateCluster, *nodes: int) -> None:
    """SIGKILL ``nodes`` at once; returns once they are gone and their ports closed."""
    pids = [cluster.node_pid(node) for node in nodes]
    await asyncio.gather(
        *(sigkill(pid, ports=cluster.ports(node)) for pid, node in zip(pids, nodes, strict=True))
    )


async def acknowledged_after(load: Load, since: float, count: int, timeout: float) -> None:
    """Wait until ``count`` answers 200 came after ``since`` (wall clock)."""

    async def enough() -> bool:
        return sum(t > since for t in load.ack_times) >= count

    await eventually(enough, timeout=timeout, interval=0.1)


async def refused_from_now(load: Load, count: int, timeout: float) -> None:
    """Wait until ``count`` more answers 503 came."""
    before = load.statuses[503]

    async def enough() -> bool:
        return load.statuses[503] - before >= count

    await eventually(enough, timeout=timeout, interval=0.1)


async def test_sigkill_of_one_broker_then_start(start_stack: StartStack) -> None:
    """Writes are acknowledged again while the broker is still down (once the
    controller fenced it), and it catches up after its start."""
    run = await BrokerFault.start(start_stack)

    async def inject() -> None:
        await kill(run.cluster, 1)
        # A second of writes acknowledged by the two brokers left.
        down = time.time()
        await acknowledged_after(run.load, down + 1, 30, timeout=SESSION_TIMEOUT_S + 15)
        run.restarts.in_sync_meanwhile(await run.restarts.start(1))

    await run.exercise("SIGKILL of one broker of three, then start", inject, run.restarts.done)


async def test_rolling_restart(start_stack: StartStack) -> None:
    """Each broker in turn stopped (SIGTERM: controlled shutdown) and started, the next
    one only once every copy is in sync again, as an upgrade goes."""
    run = await BrokerFault.start(start_stack)

    async def inject() -> None:
        for node in range(1, NODES + 1):
            await run.cluster.run_node("stop", node)
            await run.restarts.in_sync(await run.restarts.start(node))

    await run.exercise("rolling restart of the three brokers", inject)


async def test_two_of_three_brokers_down(start_stack: StartStack) -> None:
    """With one copy left no write is acknowledged (min.insync.replicas=2): 503 with
    Retry-After; with both brokers back, ingestion resumes by itself."""
    run = await BrokerFault.start(start_stack)
    window: list[float] = []

    async def inject() -> None:
        await kill(run.cluster, 1, 2)
        window.append(time.time())
        # Several refusals, each after up to PUBLISH_TIMEOUT_S (5 s) of waiting.
        await refused_from_now(run.load, 8, timeout=30)
        window.append(time.time())
        run.restarts.in_sync_meanwhile(await run.restarts.start())

    fault = "two of three brokers SIGKILLed, then started"
    report = await run.exercise(fault, inject, run.restarts.done)
    gone, back = window
    acked_with_one_copy = [
        a for a in run.load.acked.values() if gone + IN_FLIGHT_S < a.acked_at < back
    ]
    assert not acked_with_one_copy, f"acknowledged with one copy: {acked_with_one_copy[:5]}"
    assert report.responses_503 >= 8, report


async def test_one_broker_cut_off_from_the_clients(start_stack: StartStack) -> None:
    """Through the proxy in front of node 3: every client connection reset and new ones
    refused for a while, then, once writes flow again, every open one gone silent (as
    if the broker's host vanished for the clients); the brokers replicate meanwhile."""
    run = await BrokerFault.start(start_stack)
    proxy = run.cluster.proxies[PROXIED]
    broken: list[int] = []
    refused = proxy.refused

    async def inject() -> None:
        broken.append(proxy.cut())
        await refused_from_now(run.load, 4, timeout=30)
        await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for a condition
        proxy.restore()
        await acknowledged_after(run.load, time.time(), 30, timeout=30)
        broken.append(proxy.freeze())

    await run.exercise("one broker cut off from the clients", inject, deadline=SILENT_DEADLINE_S)
    print(
        f"  proxy: {broken[0]} connection(s) reset, {proxy.refused - refused} refused while"
        f" cut, {broken[1]} gone silent"
    )
    assert broken[0] >= 1 and broken[1] >= 1, broken
