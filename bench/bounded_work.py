"""``python -m bench.bounded_work`` (run by ``make bench``): the worst bodies against
legitimate ones of the same size, per surface, on a gateway of its own.

For each body: the answer, the median time to it over ``REPEATS`` sends, the
longest a ``/healthz`` polled meanwhile on the same gateway process waited (what every
other request on that process waits), and the process's peak memory so far (the
legitimate bodies go first, so a worst body that needs more raises it). One gateway
process (``GATEWAY_WORKERS=1``), so that ``/healthz`` shares its event loop. The
worst bodies are those of tests/gateway/test_bounded_work.py, which asserts their
answers and a generous bound; the figures go to docs/limits.md. Results:
``bench-results/bounded_work.md``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from schemas.limits import MAX_JSON_CONTAINERS

BODY_LIMIT = 5 * 1024 * 1024
EVENTS = "/rest-api/enterprise-interface/v1.0/events"
GROUPS = "/rest-api/customer-interface/v1.0/event-groups"
REPEATS = 5


@dataclass(frozen=True)
class Body:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    status: int  # the answer expected


def segment_auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def nested_lists(size: int) -> bytes:
    """``[0],`` repeated to ``size`` bytes: the most objects JSON builds per byte."""
    count = size // 4
    return b"[" + b"[0]," * (count - 1) + b"[0]]"


def hostile_bodies(key: str, team_id: int = 0) -> list[Body]:
    """The worst bodies we could construct within the limits, with and without a key
    (of the team ``team_id``, whose store 004 names by its id)."""
    lists = nested_lists(BODY_LIMIT - 200)
    gz = {"Content-Encoding": "gzip", "Content-Type": "text/plain"}
    segment = segment_auth(key)
    api = {"X-API-KEY": key}
    # The body: a 5 MB context of [0] and a NUL, ~5 KB once gzipped.
    nul_context = b'{"batch":[],"context":{"b":"\\u0000","a":' + lists + b"}}"
    bomb = gzip.compress(nul_context, 9)
    message = b'{"type":"track","event":"e","userId":"u","properties":{"a":%s}}' % (
        nested_lists(60_000)
    )
    item = b'{"type":"customer","email":"a@example.com","attributes":{"a":%s}}' % (
        nested_lists(30_000)
    )
    huge_key = b'{"batch":[],"writeKey":"' + b"k" * (BODY_LIMIT - 100) + b'"}'
    # Within the bounds: as many strings as fit, and as many arrays as allowed, each
    # with a NUL at the very end (refused, after every check has read it all).
    strings = (
        b'{"user":{"email":"a@example.com"},"event":{"generic":{"generic":{"a":[%s"\\u0000"]}}}}'
        % (b'"",' * ((BODY_LIMIT - 300) // 3))
    )
    fewer_strings = strings[: strings.index(b"[") + 1] + b'"",' * 990_000 + b'"\\u0000"]}}}}'
    under_cap = nested_lists(4 * (MAX_JSON_CONTAINERS - 100))
    arrays = b'{"email":"a@example.com","event":"e","data":{"a":%s,"b":"\\u0000"}}' % under_cap
    in_messages = _batch(
        [
            b'{"type":"track","event":"e","userId":"u","properties":{"a":%s}}'
            % nested_lists(4 * 2_400)
        ]
        * 80
        + [b'{"type":"track","event":"e","userId":"u","properties":{"a":"\\u0000"}}']
    )
    return [
        Body("segment: gzip bomb, no key", "/v1/batch", bomb, gz, 413),
        Body("segment: gzip bomb, key", "/v1/batch", bomb, gz | segment, 413),
        Body("segment: bomb inflated, no key", "/v1/batch", nul_context, {}, 413),
        Body("segment: bomb inflated, key", "/v1/batch", nul_context, segment, 413),
        Body("segment: 5 MB writeKey", "/v1/batch", huge_key, {}, 401),
        Body("segment: 80 messages of [0]", "/v1/batch", _batch([message] * 80), segment, 413),
        Body("000: 160 items of [0]", "/api/1.0/batch", _items([item] * 160), api, 413),
        Body("001: a body of [0]", "/api/v1/event", lists, api, 413),
        Body("002: a body of [0]", GROUPS, lists, api, 413),
        Body("003: a body of [0]", EVENTS, lists, api, 413),
        Body("004: a body of [0]", f"/core/v3/stores/{team_id}/custom_events", lists, api, 413),
        Body("001: 1.7M strings", "/api/v1/event", strings, api, 413),
        Body("001: 990,000 strings, a NUL last", "/api/v1/event", fewer_strings, api, 400),
        Body("003: 199,900 arrays, a NUL last", EVENTS, arrays, api, 400),
        Body("segment: 192,000 arrays, a NUL last", "/v1/batch", in_messages, segment, 400),
    ]


def _batch(messages: list[bytes]) -> bytes:
    return b'{"batch":[' + b",".join(messages) + b"]}"


def _items(items: list[bytes]) -> bytes:
    return b'{"items":[' + b",".join(items) + b"]}"


def legitimate_bodies(key: str) -> list[Body]:
    """Requests that are accepted, each near the body limit: the yardstick."""
    segment = segment_auth(key)
    api = {"X-API-KEY": key}
    context = {
        "library": {"name": "analytics-python", "version": "2.3.2"},
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36",
        "page": {"path": "/cart", "url": "https://shop.example/cart", "title": "Cart"},
    }
    messages = [
        json.dumps(
            {
                "type": "track",
                "event": "Product Added",
                "userId": f"user-{i}",
                "messageId": f"m-{i}-{time.time_ns()}",
                "timestamp": "2026-12-05T10:00:00Z",
                "properties": {"sku": f"sku-{i}", "price": 12.5, "tags": ["a", "b"]}
                | {f"p{j}": "x" * 40 for j in range(25)},
                "context": context,
            }
        ).encode()
        for i in range(2_400)
    ]
    items = [
        json.dumps(
            {
                "type": "customer",
                "email": f"c{i}@example.com",
                "attributes": {f"a{j}": "y" * 40 for j in range(20)},
            }
        ).encode()
        for i in range(4_500)
    ]
    event = json.dumps(
        {
            "user": {"email": "c1@example.com"},
            "event": {
                "generic": {"generic": {"event_name": "big", "blob": "z" * (BODY_LIMIT - 400)}}
            },
        }
    ).encode()
    return [
        Body("segment: 2,400 SDK messages", "/v1/batch", _batch(messages), segment, 200),
        Body("000: 4,500 customer items", "/api/1.0/batch", _items(items), api, 200),
        Body("001: one large event", "/api/v1/event", event, api, 0),
    ]


async def _healthz(base: str, stop: asyncio.Event, delays: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            await client.get("/healthz")
            delays.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)


@dataclass(frozen=True)
class Measured:
    body: Body
    statuses: list[int]
    seconds: float  # median to the answer
    healthz_max: float  # the longest /healthz waited meanwhile
    healthz_idle: float  # the longest /healthz waited with nothing in flight
    peak_rss_mb: float | None = None  # the gateway process's peak resident memory since it started


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (``VmHWM``), in MB; None where /proc has none."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


async def measure(
    base: str, body: Body, repeats: int = REPEATS, pid: int | None = None
) -> Measured:
    idle: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_healthz(base, stop, idle))
    await asyncio.sleep(0.2)
    stop.set()
    await task
    delays: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(_healthz(base, stop, delays))
    statuses, times = [], []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            response = await client.post(body.path, content=body.body, headers=body.headers)
            times.append(time.perf_counter() - started)
            statuses.append(response.status_code)
    stop.set()
    await task
    peak = peak_rss_mb(pid) if pid is not None else None
    return Measured(body, statuses, statistics.median(times), max(delays), max(idle), peak)


def table(rows: list[Measured]) -> str:
    lines = [
        "| body | bytes sent | answer | time to answer (median) | longest /healthz wait"
        " meanwhile (idle) | gateway's peak memory so far |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for m in rows:
        answer = ",".join(sorted({str(s) for s in m.statuses}))
        lines.append(
            f"| {m.body.name} | {len(m.body.body):,} | {answer} | {m.seconds * 1000:.0f} ms"
            f" | {m.healthz_max * 1000:.0f} ms ({m.healthz_idle * 1000:.0f} ms)"
            f" | {'-' if m.peak_rss_mb is None else f'{m.peak_rss_mb:.0f} MB'} |"
        )
    return "\n".join(lines)


async def main_async() -> str:
    from bench.__main__ import bench_run, env_of, new_team, parse_args, wait_healthy
    from bench.procs import BIN, Service

    opts = parse_args(["--scenarios", "", "--gateway-workers", "1"])
    async with bench_run(opts) as run:
        gateway = Service(
            "gateway", [str(BIN / "ingest-gateway")], env_of(run.settings), run.log_dir
        )
        run.services.append(gateway)
        base = f"http://127.0.0.1:{run.settings.gateway_port}"
        await wait_healthy(f"{base}/readyz", gateway)
        team_id, key = await new_team(run, "bounded")
        # Legitimate bodies first: a worst body that needs more memory raises the peak.
        pid = gateway.pid
        rows = [await measure(base, body, pid=pid) for body in legitimate_bodies(key)]
        rows += [await measure(base, body, pid=pid) for body in hostile_bodies(key, team_id)]
    return table(rows)


def main() -> None:
    result = asyncio.run(main_async())
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "bounded_work.md").write_text(result + "\n")
    print(result)


if __name__ == "__main__":
    main()
