"""A load-generator process: keep-alive connections sending pre-built requests.

Closed loop (``rate`` None): each connection sends its next request as soon as the
previous one is answered, which finds the maximum. Open loop (``rate`` requests/s):
requests start on a fixed schedule and latency counts from the scheduled start,
so a slow answer cannot hide the queueing it causes (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import uvloop

from bench.http import Connection, HttpError, build_request
from bench.workload import Kind, Template, client_ids, stamp

REQUEST_TIMEOUT_S = 30.0  # an answer later than this counts as an error (unknown outcome)


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    headers: dict[str, str]
    templates: list[Template]
    connections: int
    duration_s: float
    start_at: float  # epoch seconds, so that every process starts together
    rate: float | None = None  # requests/s of this process; None = closed loop
    collect_ids: bool = True


@dataclass
class LoadResult:
    ends: list[float] = field(default_factory=list)  # epoch seconds, per answered request
    latencies: list[float] = field(default_factory=list)  # seconds, per accepted request
    accepted: list[int] = field(default_factory=list)  # writes accepted, per request
    event_ids: list[str] = field(default_factory=list)
    customer_ids: list[str] = field(default_factory=list)
    # Segment: the counter of each accepted request (its answer names no ids).
    stamps: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    requests: int = 0
    cpu_s: float = 0.0  # CPU seconds of this generator process
    # The spec's templates: set by the parent once the result is back (the child leaves
    # them empty: no need to send them back).
    templates: list[Template] = field(default_factory=list)

    def client_ids(self, team_id: int) -> Iterator[tuple[Kind, str]]:
        """(kind, message id) of every write of the accepted Segment requests."""
        for counter in self.stamps:
            template = self.templates[counter % len(self.templates)]
            yield from client_ids(team_id, template, counter)


class _Generator:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.result = LoadResult()
        self.raw = [
            build_request(
                "POST", t.path, t.body, {"Content-Type": "application/json", **spec.headers}
            )
            for t in spec.templates
        ]
        self.stamped = [bool(t.message_ids) for t in spec.templates]
        self.sent = 0  # requests started: template sent % len, sent with stamp ``sent``

    async def _one(self, conn: Connection, started: float) -> None:
        sent = self.sent
        self.sent = sent + 1
        index = sent % len(self.raw)
        raw = self.raw[index]
        stamped = self.stamped[index]
        if stamped:
            raw = stamp(raw, sent)
        r = self.result
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, body = await conn.request(raw)
        except (HttpError, OSError, TimeoutError):
            await conn.close()
            r.errors += 1
            return
        now = time.perf_counter()
        r.requests += 1
        r.statuses[status] = r.statuses.get(status, 0) + 1
        if status not in (200, 202):
            return
        if stamped:  # Segment: 200 {"success": true} means every call was accepted
            count = len(self.spec.templates[index].kinds)
            if self.spec.collect_ids:
                r.stamps.append(sent)
        else:
            count = self._accepted(index, body)
        r.ends.append(time.time())
        r.latencies.append(now - started)
        r.accepted.append(count)

    def _accepted(self, index: int, body: bytes) -> int:
        """Writes the answer says were accepted; their ids collected."""
        r = self.result
        answer = orjson.loads(body)
        if "items" not in answer:
            if self.spec.collect_ids:
                r.event_ids.append(answer["id"])
            return 1
        kinds = self.spec.templates[index].kinds
        count = 0
        for item in answer["items"]:
            if item["status"] == "accepted":
                count += 1
                if self.spec.collect_ids:
                    if kinds[item["index"]] == "event":
                        r.event_ids.append(item["id"])
                    else:
                        r.customer_ids.append(item["id"])
        return count

    async def closed_loop(self, conn: Connection, deadline: float) -> None:
        while time.perf_counter() < deadline:
            await self._one(conn, time.perf_counter())

    async def open_loop(self, conns: list[Connection], rate: float, deadline: float) -> None:
        free: asyncio.Queue[Connection] = asyncio.Queue()
        for conn in conns:
            free.put_nowait(conn)

        async def scheduled(at: float) -> None:
            conn = await free.get()
            try:
                await self._one(conn, at)
            finally:
                free.put_nowait(conn)

        tasks = set()
        start = time.perf_counter()
        k = 0
        while True:
            at = start + k / rate
            if at >= deadline:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(scheduled(at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.gather(*tasks)

    async def run(self) -> LoadResult:
        spec = self.spec
        conns = [Connection(spec.host, spec.port) for _ in range(spec.connections)]
        await asyncio.sleep(max(0.0, spec.start_at - time.time()))
        deadline = time.perf_counter() + spec.duration_s
        if spec.rate is None:
            await asyncio.gather(*(self.closed_loop(c, deadline) for c in conns))
        else:
            await self.open_loop(conns, spec.rate, deadline)
        for conn in conns:
            await conn.close()
        return self.result


def run(spec: LoadSpec, out_path: str) -> None:
    """Process entry point: run the load, pickle the result to ``out_path``."""
    result = uvloop.run(_Generator(spec).run())
    result.cpu_s = time.process_time()
    Path(out_path).write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
