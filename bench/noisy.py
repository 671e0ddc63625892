"""``python -m bench.noisy`` (``make bench``): the noisy-neighbour scenario (issue #21).

Three quiet teams write single events at a steady, open-loop rate while a fourth
team (or one customer key) does what a flooding client does; the quiet teams'
**ingest-to-queryable** latency is compared with theirs alone. Phases, each
``--seconds`` long, fresh teams in each:

* ``alone``: the quiet teams only (the baseline);
* ``quota``: plus a noisy team offering ten times the quiet total in batches of 100,
  under a quota of twice the quiet total: it gets 429 beyond it;
* ``hot key``: one customer id of the first quiet team sent at ten times
  ``LANE_CUSTOMER_EVENTS_PER_SECOND`` (batches of 100), the other teams measured;
* ``flood``: the noisy team without a quota, batches of 100 from many connections as
  fast as they are answered (the issue's flood): the overflow lane is what protects
  the quiet teams. Last, so that the backlog it leaves in the overflow lane does not
  overlap another phase.

How the latency is measured: the quiet load is sent from this process, which keeps
the message id of every write answered 2xx and the time of the answer. A poller
asks PostgreSQL every ``--poll-ms`` which of the ids still pending are in ``events``
(``SELECT id FROM events WHERE id = ANY($1)``: primary-key probes of the few ids in
flight, so the measurement costs little while the pipeline keeps up). A write's
latency is the start of the first poll that sees it minus its 2xx: an overestimate
by at most one poll interval. When the ids pile up, the poller waits twice as long
as its query took, so it never takes more than a third of a core; the resolution
then stays small next to the latencies it measures. (``stored_at - received_at``
stops at the insert, before the consumer's transaction commits, and starts before the
Kafka acknowledgement; it is in the JSON for comparison.)

Every write answered 2xx must be stored, whatever lane it took: the noisy team's and
the hot key's accepted ids are checked against ``events`` once the consumers drained
them (a write not stored within ``--drain-timeout`` is reported as such). Writes per
lane come from the gateway's ``ingest_gateway_overflow_messages_total{reason}``.

The pipeline runs as ``bench/__main__.py`` runs it, on a database and topics of its
own: one gateway process and ``ingest-consumer`` with one main and one overflow
worker. Results go to ``bench-results/noisy.{json,md}``; ``--publish`` copies the
table to ``docs/bench/noisy.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shlex
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvloop

from bench.__main__ import (
    Run,
    bench_run,
    env_of,
    free_port,
    loadgen_results,
    new_team,
    percentile,
    start_loadgens,
    wait_healthy,
)
from bench.__main__ import parse_args as bench_args
from bench.http import Connection, HttpError, build_request
from bench.loadgen import LoadResult, LoadSpec
from bench.procs import BIN, REPO, Service
from bench.workload import EVENT_NAMES, SCENARIOS, Template, customer_email, templates

QUIET_TEAMS = 3
QUIET_CONNECTIONS = 8  # per quiet team: open loop, a request waits only for a free one
REQUEST_TIMEOUT_S = 30.0
OVERFLOW_METRIC = "ingest_gateway_overflow_messages_total"
REASONS = ("team", "customer", "control")
HOT_TEAM = 0  # the quiet team whose one customer is the hot key (phase "hot")


@dataclass
class Options:
    out: Path
    seconds: float
    quiet_rate: float
    noisy_factor: float
    quota_factor: float
    hot_factor: float
    flood_loadgens: int
    flood_connections: int
    poll_ms: float
    drain_timeout: float
    overflow_processes: int
    phases: list[str]
    publish: bool
    command: str


PHASES = ("alone", "quota", "hot", "flood")


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench.noisy", description=__doc__)
    p.add_argument("--out", type=Path, default=REPO / "bench-results")
    p.add_argument("--seconds", type=float, default=20.0, help="load time of each phase")
    p.add_argument("--quick", action="store_true", help="phases of 5 s: a trial run")
    p.add_argument("--quiet-rate", type=float, default=100.0, help="events/s of each quiet team")
    p.add_argument(
        "--noisy-factor", type=float, default=10.0, help="the noisy team's offer / quiet total"
    )
    p.add_argument("--quota-factor", type=float, default=2.0, help="its quota / quiet total")
    p.add_argument(
        "--hot-factor",
        type=float,
        default=10.0,
        help="the hot key's events/s / LANE_CUSTOMER_EVENTS_PER_SECOND",
    )
    p.add_argument("--flood-loadgens", type=int, default=1, help="flood generator processes")
    p.add_argument("--flood-connections", type=int, default=32, help="connections each")
    p.add_argument("--poll-ms", type=float, default=10.0, help="the visibility poller's interval")
    p.add_argument("--drain-timeout", type=float, default=120.0)
    p.add_argument(
        "--overflow-processes",
        type=int,
        default=1,
        help="overflow-lane workers (0: the lane is not applied during the run, to see"
        " what applying it costs the quiet teams; its writes then count as not stored)",
    )
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    p.add_argument("--publish", action="store_true", help="copy the table to docs/bench/noisy.md")
    a = p.parse_args(argv)
    phases = [x for x in a.phases.split(",") if x]
    unknown = set(phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {sorted(unknown)}")
    return Options(
        out=a.out,
        seconds=5.0 if a.quick else a.seconds,
        quiet_rate=a.quiet_rate,
        noisy_factor=a.noisy_factor,
        quota_factor=a.quota_factor,
        hot_factor=a.hot_factor,
        flood_loadgens=a.flood_loadgens,
        flood_connections=a.flood_connections,
        poll_ms=a.poll_ms,
        drain_timeout=a.drain_timeout,
        overflow_processes=a.overflow_processes,
        phases=[x for x in PHASES if x in phases],
        publish=a.publish,
        command=shlex.join(
            ["python", "-m", "bench.noisy", *(sys.argv[1:] if argv is None else argv)]
        ),
    )


# -- ingest-to-queryable: the quiet writes' ids, polled for --------------------------------


class Poller:
    """Sees when each pending id becomes visible in ``events`` (see the module's docstring)."""

    def __init__(self, database_url: str, interval_s: float) -> None:
        self._url = database_url
        self._interval = interval_s
        self.pending: dict[str, tuple[float, int]] = {}  # id -> (2xx epoch, quiet team)
        self.latencies: dict[int, list[float]] = {}  # quiet team -> seconds
        self.polls = 0
        self._empty = asyncio.Event()  # set when no id is pending
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    def add(self, message_id: str, answered: float, team: int) -> None:
        self.pending[message_id] = (answered, team)
        self._empty.clear()

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._url)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()

    async def _run(self) -> None:
        assert self._conn is not None
        while True:
            took = 0.0
            if self.pending:
                started = time.time()
                rows = await self._conn.fetch(
                    "SELECT id::text AS id FROM events WHERE id = ANY($1::uuid[])",
                    list(self.pending),
                )
                self.polls += 1
                for row in rows:
                    answered, team = self.pending.pop(row["id"])
                    # Visible when this poll's snapshot was taken, not before the last.
                    self.latencies.setdefault(team, []).append(max(0.0, started - answered))
                took = time.time() - started
                if not self.pending:
                    self._empty.set()
            await asyncio.sleep(max(self._interval, 2 * took))

    async def drained(self, within_s: float) -> bool:
        """Whether every pending id was seen within ``within_s``."""
        if not self.pending:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._empty.wait()
        return not self.pending


@dataclass
class QuietResult:
    answered: int = 0  # 2xx
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    http_s: list[float] = field(default_factory=list)  # scheduled start -> 2xx


def quiet_requests(run: str, key: str, count: int, seed: int) -> list[bytes]:
    """Single events (the 000 API's event endpoint) of ``count`` customers of one team."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        email = customer_email(f"{run}q{seed}", i)
        path = f"/api/1.0/events/{rng.choice(EVENT_NAMES)}/{email}/ext-{rng.randrange(10**6)}"
        body = orjson.dumps({"amount": round(rng.uniform(1, 500), 2), "currency": "EUR"})
        headers = {"Content-Type": "application/json", "X-API-KEY": key}
        out.append(build_request("POST", path, body, headers))
    return out


async def quiet_team(
    port: int,
    raw: list[bytes],
    rate: float,
    start_at: float,
    duration_s: float,
    team: int,
    poller: Poller,
) -> QuietResult:
    """Open loop: request k starts at ``start + k / rate`` on the first free connection."""
    result = QuietResult()
    free: asyncio.Queue[Connection] = asyncio.Queue()
    conns = [Connection("127.0.0.1", port) for _ in range(QUIET_CONNECTIONS)]
    for conn in conns:
        free.put_nowait(conn)

    async def one(at: float, request: bytes) -> None:
        conn = await free.get()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, body = await conn.request(request)
        except (HttpError, OSError, TimeoutError):
            await conn.close()
            result.errors += 1
            return
        finally:
            free.put_nowait(conn)
        answered = time.time()
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status in (200, 202):
            result.answered += 1
            result.http_s.append(time.perf_counter() - at)
            poller.add(orjson.loads(body)["id"], answered, team)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    # The teams' schedules interleave rather than fire together.
    start = time.perf_counter() + team / (QUIET_TEAMS * rate)
    tasks: set[asyncio.Task[None]] = set()
    k = 0
    while (at := start + k / rate) < start + duration_s:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(at, raw[k % len(raw)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += 1
    if tasks:
        await asyncio.gather(*tasks)
    for conn in conns:
        await conn.close()
    return result


# -- the noisy side: load-generator processes ----------------------------------------------


async def generate(specs: list[LoadSpec]) -> list[LoadResult]:
    """Run one load-generator process per spec; their results."""
    return await loadgen_results(start_loadgens(specs))


def hot_key_templates(run: str, count: int = 10) -> list[Template]:
    """Batches of 100 events, all of one customer."""
    rng = random.Random(7)
    email = f"hot.{run}@bench.example.com"
    out = []
    for _ in range(count):
        items = [
            {
                "type": "event",
                "email": email,
                "eventName": rng.choice(EVENT_NAMES),
                "externalId": f"ext-{rng.randrange(10**6)}",
                "body": {"amount": round(rng.uniform(1, 500), 2)},
            }
            for _ in range(100)
        ]
        out.append(Template("/api/1.0/batch", orjson.dumps({"items": items}), ("event",) * 100))
    return out


@dataclass
class Noise:
    """A load beside the quiet teams': whose, what and how fast."""

    label: str  # "noisy team" or "hot key"
    team_id: int
    key: str
    templates: list[Template]
    processes: int
    connections: int
    rate: float | None  # requests/s over all processes; None: as fast as answered


def _sum_results(results: list[LoadResult]) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    for r in results:
        for status, count in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "requests": sum(r.requests for r in results),
        "connection_errors": sum(r.errors for r in results),
        "statuses": statuses,
        "accepted": sum(sum(r.accepted) for r in results),
        "ids": [i for r in results for i in r.event_ids],
    }


# -- the pipeline under test ---------------------------------------------------------------


@dataclass
class Bench:
    run: Run
    opts: Options
    gateway: Service
    metrics_url: str
    poller: Poller
    lane_customer_rate: float
    results: list[dict[str, Any]] = field(default_factory=list)

    async def overflowed(self) -> dict[str, float]:
        """The gateway's overflow counters, by reason (flushed once a second)."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(self.metrics_url, timeout=10)).text
        found = dict.fromkeys(REASONS, 0.0)
        for line in text.splitlines():
            if line.startswith(OVERFLOW_METRIC + "{"):
                labels, value = line.rsplit(" ", 1)
                for reason in REASONS:
                    if f'reason="{reason}"' in labels:
                        found[reason] = float(value)
        return found

    async def stored_ids(self, team_id: int) -> set[str]:
        assert self.run.db is not None
        rows = await self.run.db.fetch(
            "SELECT id::text AS id FROM events WHERE team_id = $1", team_id
        )
        return {r["id"] for r in rows}

    async def wait_stored(self, team_id: int, expected: int) -> bool:
        """Until the team has ``expected`` events stored; False after the drain timeout."""
        assert self.run.db is not None
        deadline = time.monotonic() + self.opts.drain_timeout
        while time.monotonic() < deadline:
            n = await self.run.db.fetchval(
                "SELECT count(*) FROM events WHERE team_id = $1", team_id
            )
            if n >= expected:
                return True
            await asyncio.sleep(0.5)
        return False

    async def phase(
        self,
        name: str,
        title: str,
        noise: Callable[[list[tuple[int, str]]], Awaitable[Noise]] | None = None,
        quota: float | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """One phase: the quiet teams, and ``noise`` (made from them) beside them."""
        opts, port = self.opts, self.run.settings.gateway_port
        seconds = opts.seconds if seconds is None else seconds
        quiet = [await new_team(self.run, f"{name}-quiet{i}") for i in range(QUIET_TEAMS)]
        load = await noise(quiet) if noise is not None else None
        if load is not None and quota is not None:
            assert self.run.db is not None
            await self.run.db.execute(
                "UPDATE teams SET events_per_second = $2, burst = $3 WHERE id = $1",
                load.team_id,
                quota,
                int(quota),
            )
        before = await self.overflowed()
        # Long enough for the gateway to read the new teams' keys and the quota.
        start_at = time.time() + 2.0
        poller = self.poller
        poller.latencies = {}
        raw = [
            quiet_requests(self.run.id + name, key, 500, seed=i)
            for i, (_t, key) in enumerate(quiet)
        ]
        quiet_tasks = [
            quiet_team(port, raw[i], opts.quiet_rate, start_at, seconds, i, poller)
            for i in range(QUIET_TEAMS)
        ]
        specs = []
        if load is not None:
            per_process = None if load.rate is None else load.rate / load.processes
            specs = [
                LoadSpec(
                    host="127.0.0.1",
                    port=port,
                    headers={"X-API-KEY": load.key},
                    templates=load.templates,
                    connections=load.connections,
                    duration_s=seconds,
                    start_at=start_at,
                    rate=per_process,
                )
                for _ in range(load.processes)
            ]
        quiet_results, noisy_results = await asyncio.gather(
            asyncio.gather(*quiet_tasks), generate(specs)
        )
        load_end = start_at + seconds
        visible = await poller.drained(opts.drain_timeout)
        late = len(poller.pending)
        poller.pending.clear()
        noisy: dict[str, Any] | None = None
        if load is not None:
            summed = _sum_results(noisy_results)
            # The hot key's team also has its quiet events, all visible by now.
            expected = summed["accepted"] + sum(
                len(v) for t, v in poller.latencies.items() if quiet[t][0] == load.team_id
            )
            drained = await self.wait_stored(load.team_id, expected)
            drained_after = time.time() - load_end
            stored = await self.stored_ids(load.team_id)
            ids = summed.pop("ids")
            noisy = {
                "label": load.label,
                **summed,
                "accepted_per_s": summed["accepted"] / seconds,
                "refused_429": summed["statuses"].get(429, 0),
                "stored": len(stored.intersection(ids)),
                "lost": len(set(ids) - stored),
                "drained": drained,
                "drained_after_s": max(0.0, drained_after),
            }
        await asyncio.sleep(max(0.0, load_end + 1.5 - time.time()))  # the metrics' flush
        after = await self.overflowed()
        hot_team = HOT_TEAM if name == "hot" else None
        measured = [t for t in range(QUIET_TEAMS) if t != hot_team]
        lat = [x for t in measured for x in poller.latencies.get(t, [])]
        http = [x for t in measured for r in [quiet_results[t]] for x in r.http_s]
        statuses: dict[int, int] = {}
        for r in quiet_results:
            for s, n in r.statuses.items():
                statuses[s] = statuses.get(s, 0) + n
        answered = sum(r.answered for r in quiet_results)
        seen = sum(len(v) for v in poller.latencies.values())
        assert self.run.db is not None
        insert = await self.run.db.fetchrow(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50,"
            "       percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99"
            "  FROM (SELECT extract(epoch FROM stored_at - received_at) * 1000 AS d"
            "          FROM events WHERE team_id = ANY($1::bigint[])) x",
            [quiet[t][0] for t in measured],
        )
        result = {
            "name": name,
            "title": title,
            "seconds": seconds,
            "quiet": {
                "teams_measured": len(measured),
                "answered_2xx": answered,
                "statuses": statuses,
                "connection_errors": sum(r.errors for r in quiet_results),
                "stored": seen,
                "not_visible_in_time": late,
                "all_visible": visible,
                "queryable_ms": _quantiles(lat),
                "http_ms": _quantiles(http),
                # For comparison: the main bench's figure (insert time, before commit).
                "stored_minus_received_ms": {
                    q: None if insert is None or insert[q] is None else float(insert[q])
                    for q in ("p50", "p99")
                },
                "polls": poller.polls,
            },
            "hot_team_other_customers_ms": (
                _quantiles(poller.latencies.get(hot_team, [])) if hot_team is not None else None
            ),
            "noisy": noisy,
            "overflow": {r: after[r] - before[r] for r in REASONS},
        }
        self.results.append(result)
        return result


def _quantiles(seconds: list[float]) -> dict[str, float | None]:
    return {
        q: None if (v := percentile(seconds, x)) is None else v * 1000
        for q, x in (("p50", 0.5), ("p99", 0.99))
    }


async def main_async(opts: Options) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # The database and topics (the overflow lane's too) of bench/__main__.py.
    base = bench_args(["--gateway-workers", "1", "--consumer-processes", "1"])
    async with bench_run(base) as run:
        metrics_port = free_port()
        run.settings = run.settings.model_copy(
            update={
                "consumer_overflow_processes": opts.overflow_processes,
                "gateway_metrics_port": metrics_port,
                "quota_refresh_s": 0.5,
            }
        )
        s = run.settings
        env = env_of(s)
        consumer = Service("consumer", [str(BIN / "ingest-consumer")], env, run.log_dir)
        run.services.append(consumer)
        gateway = Service("gateway", [str(BIN / "ingest-gateway")], env, run.log_dir)
        run.services.append(gateway)
        await wait_healthy(f"http://127.0.0.1:{s.gateway_port}/readyz", gateway)
        poller = Poller(s.database_url, opts.poll_ms / 1000)
        await poller.start()
        bench = Bench(
            run,
            opts,
            gateway,
            f"http://127.0.0.1:{metrics_port}/metrics",
            poller,
            s.lane_customer_events_per_second,
        )
        quiet_total = QUIET_TEAMS * opts.quiet_rate
        try:
            await bench.phase("warmup", "warm-up", seconds=3.0)
            bench.results.clear()
            for name in opts.phases:
                await run_phase(bench, name, quiet_total)
                _progress(bench.results[-1])
        finally:
            await poller.stop()
            if not gateway.alive() or not consumer.alive():
                print(gateway.tail(), consumer.tail(), sep="\n", file=sys.stderr)
    return {
        "started": started,
        "command": opts.command,
        "config": {
            "quiet_teams": QUIET_TEAMS,
            "quiet_rate": opts.quiet_rate,
            "noisy_rate": opts.noisy_factor * quiet_total,
            "quota": opts.quota_factor * quiet_total,
            "hot_rate": opts.hot_factor * s.lane_customer_events_per_second,
            "lane_team_events_per_second": s.lane_team_events_per_second,
            "lane_customer_events_per_second": s.lane_customer_events_per_second,
            "flood": f"{opts.flood_loadgens} x {opts.flood_connections} connections",
            "poll_ms": opts.poll_ms,
            "overflow_processes": opts.overflow_processes,
            "cpus": os.cpu_count(),
        },
        "phases": bench.results,
    }


async def run_phase(bench: Bench, name: str, quiet_total: float) -> None:
    opts, run = bench.opts, bench.run
    batch100 = SCENARIOS["batch100"]

    async def noisy_team(label: str, rate: float | None, processes: int, conns: int) -> Noise:
        team_id, key = await new_team(run, f"{name}-noisy")
        t = templates(batch100, f"{run.id}{name}", 10_000, 40, seed=1)
        return Noise(label, team_id, key, t, processes, conns, rate)

    if name == "alone":
        await bench.phase(name, "3 quiet teams alone")
    elif name == "quota":
        rate = opts.noisy_factor * quiet_total / 100  # requests/s of 100 events

        async def quota_noise(_quiet: list[tuple[int, str]]) -> Noise:
            return await noisy_team("noisy team", rate, 1, 16)

        await bench.phase(
            name,
            f"+ noisy team offering {opts.noisy_factor:g}x, quota {opts.quota_factor:g}x",
            quota_noise,
            quota=opts.quota_factor * quiet_total,
        )
    elif name == "hot":
        rate = opts.hot_factor * bench.lane_customer_rate / 100

        async def hot_noise(quiet: list[tuple[int, str]]) -> Noise:
            team_id, key = quiet[HOT_TEAM]
            return Noise("hot key", team_id, key, hot_key_templates(run.id), 1, 8, rate)

        await bench.phase(
            name,
            f"+ one customer of quiet team 1 at {opts.hot_factor:g}x the customer lane rate",
            hot_noise,
        )
    elif name == "flood":

        async def flood_noise(_quiet: list[tuple[int, str]]) -> Noise:
            return await noisy_team("noisy team", None, opts.flood_loadgens, opts.flood_connections)

        await bench.phase(name, "+ noisy team flooding, no quota", flood_noise)


def _progress(result: dict[str, Any]) -> None:
    q, n = result["quiet"], result["noisy"] or {}
    print(
        f"{result['name']}: quiet queryable {q['queryable_ms']}, HTTP {q['http_ms']};"
        f" {n.get('label', '')} accepted {n.get('accepted')} 429 {n.get('refused_429')}"
        f" lost {n.get('lost')}; overflow {result['overflow']}",
        file=sys.stderr,
    )


# -- the report ----------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown(results: dict[str, Any]) -> str:
    phases = results["phases"]
    base = next((p for p in phases if p["name"] == "alone"), None)
    base_p99 = base["quiet"]["queryable_ms"]["p99"] if base else None
    rows = [
        "| phase | quiet teams: 2xx -> queryable p50 / p99 ms | p99 vs alone |"
        " quiet HTTP p50 / p99 ms | noisy accepted (ev/s) / 429 answers |"
        " answered 2xx / stored / lost | overflow lane: team / customer / control |",
        "|" + "---|" * 7,
    ]
    for p in phases:
        q, n = p["quiet"], p["noisy"]
        p99 = q["queryable_ms"]["p99"]
        ratio = "-" if p99 is None or not base_p99 else f"{p99 / base_p99:.1f}x"
        answered = q["answered_2xx"] + (n["accepted"] if n else 0)
        stored = q["stored"] + (n["stored"] if n else 0)
        lost = q["not_visible_in_time"] + (n["lost"] if n else 0)
        noisy = "-"
        if n:
            noisy = (
                f"{n['label']}: {n['accepted']:,} ({n['accepted_per_s']:,.0f}/s)"
                f" / {n['refused_429']:,}"
            )
        o = p["overflow"]
        rows.append(
            f"| {p['title']} | {_ms(q['queryable_ms']['p50'])} / {_ms(p99)} | {ratio} |"
            f" {_ms(q['http_ms']['p50'])} / {_ms(q['http_ms']['p99'])} | {noisy} |"
            f" {answered:,} / {stored:,} / {lost} |"
            f" {o['team']:,.0f} / {o['customer']:,.0f} / {o['control']:,.0f} |"
        )
    hot = next((p for p in phases if p["hot_team_other_customers_ms"]), None)
    cfg = results["config"]
    notes = [
        "",
        f"Quiet teams: {cfg['quiet_teams']} x {cfg['quiet_rate']:g} single events/s, open loop;"
        f" noisy team offering {cfg['noisy_rate']:,.0f} events/s in batches of 100 under a quota of"
        f" {cfg['quota']:,.0f}/s; hot key at {cfg['hot_rate']:,.0f} events/s; flood from"
        f" {cfg['flood']}, no quota. Lanes: LANE_TEAM_EVENTS_PER_SECOND"
        f" {cfg['lane_team_events_per_second']:g}, LANE_CUSTOMER_EVENTS_PER_SECOND"
        f" {cfg['lane_customer_events_per_second']:g}. Queryable: from the 2xx to the first"
        f" poll (every {cfg['poll_ms']:g} ms) that sees the event in PostgreSQL. In the hot-key"
        " phase the quiet figures are the two other teams'",
    ]
    if hot:
        h = hot["hot_team_other_customers_ms"]
        notes[-1] += (
            f"; the hot key's team's other customers: p50 {_ms(h['p50'])} / p99 {_ms(h['p99'])} ms"
        )
    notes[-1] += "."
    notes.append("")
    notes.append(f"Run {results['started']} on {cfg['cpus']} CPUs; `{results['command']}`.")
    return "\n".join(rows + notes) + "\n"


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    results = uvloop.run(main_async(opts))
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "noisy.json").write_text(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    )
    table = markdown(results)
    (opts.out / "noisy.md").write_text(table)
    if opts.publish:
        docs = REPO / "docs" / "bench"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(opts.out / "noisy.md", docs / "noisy.md")
    print(table)


if __name__ == "__main__":
    main()
