"""Prometheus metrics of a gateway process (served on ``GATEWAY_METRICS_PORT``).

One job: the metrics, and the few calls the request path makes to feed them. The
names follow Prometheus' conventions (base units, ``_total`` counters); the list
with their meaning is in docs/operations.md, "Metrics".

Cost on the request path (``bench.instructions``, docs/benchmark.md): a request adds
to plain numbers of its (route, status) (``RequestMetrics``); once a second they go
to prometheus_client, whose calls would cost a 000 write a fifth of its instructions
if made per request. Requests in flight and readiness are sampled then too. With
``GATEWAY_METRICS_PORT=0`` nothing is counted.

With several uvicorn workers, ``ingest-gateway`` sets ``PROMETHEUS_MULTIPROC_DIR``
before they start, so each worker's values go to files there and whichever worker
answers a scrape sums them (``runtime.health_server``). Imports prometheus_client,
``edge.body`` for where it leaves the body's size, ``runtime.tasks`` (the sampler's
stop) and ``web.routing`` for the route type only.
"""

from __future__ import annotations

import asyncio
import collections
import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Scope

from ingest_gateway.edge.body import BODY_BYTES_KEY
from runtime.tasks import cancel_and_wait

if TYPE_CHECKING:  # (imported at run time, routing would import the publisher, which imports this)
    from ingest_gateway.web.routing import Route

# Seconds, from a millisecond to the longest a request may wait (WAIT_TIMEOUT_S).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter(
    "ingest_gateway_requests_total",
    "HTTP requests answered, by API surface, method, route template and status",
    ["surface", "method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "ingest_gateway_request_duration_seconds",
    "From routing a request to its answer, body reading, publishing and waiting included",
    ["surface"],
    buckets=LATENCY_BUCKETS,
)
BODY_BYTES = Counter(
    "ingest_gateway_request_body_bytes_total",
    "Request body bytes received, as sent (before gzip decoding)",
    ["surface"],
)
MESSAGES = Counter(
    "ingest_gateway_messages_total",
    "Writes accepted (published and acknowledged) or refused (an item of a batch, or a "
    "whole request refused for its content: 400, 413, 422)",
    ["surface", "outcome"],
)
PUBLISH_SECONDS = Histogram(
    "ingest_gateway_publish_duration_seconds",
    "From sending a Kafka record to its acknowledgement by every in-sync replica",
    buckets=LATENCY_BUCKETS,
)
PUBLISH_FAILURES = Counter(
    "ingest_gateway_publish_failures_total",
    "Kafka records not acknowledged, by reason (the writes were answered 503; a"
    " too_large here is the broker's limit below KAFKA_MESSAGE_MAX_BYTES)",
    ["reason"],
)
IN_FLIGHT = Gauge(
    "ingest_gateway_requests_in_flight",
    "Requests being served (sampled each second)",
    multiprocess_mode="livesum",
)
READY = Gauge(
    "ingest_gateway_ready",
    "1 when the service answers (as /readyz), 0 when not; the lowest of the workers",
    ["service"],
    multiprocess_mode="livemin",
)
OVERFLOW_MESSAGES = Counter(
    "ingest_gateway_overflow_messages_total",
    "Writes published to the overflow lane, by why: team (its rate through this process"
    " beyond LANE_TEAM_EVENTS_PER_SECOND), customer (one customer key beyond"
    " LANE_CUSTOMER_EVENTS_PER_SECOND) or control (the team's overflow control)",
    ["reason"],
)
CONTROLLED_MESSAGES = Counter(
    "ingest_gateway_controlled_messages_total",
    "Writes a team's runtime control acted on (ingest-admin control), by control:"
    " drop (answered, not stored), dead_letter, skip_identity, overflow",
    ["control"],
)
TRACKING_VIOLATIONS = Counter(
    "ingest_gateway_tracking_violations_total",
    "Writes that broke their team's tracking plan, by what the plan does with them:"
    " allow (stored), omit (stored without the offending properties), block (not"
    " stored); each is kept in tracking_violations, unless the team's drop or"
    " dead_letter control kept it from the consumers",
    ["action"],
)
TEAM_CONTROLS = Gauge(
    "ingest_gateway_team_controls",
    "Teams under each runtime control, as the gateway last read them",
    ["control"],
    multiprocess_mode="livemax",
)
for _service in ("kafka", "postgres"):
    READY.labels(_service)
for _reason in ("broker_unavailable", "timeout", "too_large", "other"):
    PUBLISH_FAILURES.labels(_reason)

for _reason in ("team", "customer", "control"):
    OVERFLOW_MESSAGES.labels(_reason)
for _control in ("drop", "dead_letter", "skip_identity", "overflow"):
    CONTROLLED_MESSAGES.labels(_control)
for _action in ("allow", "omit", "block"):
    TRACKING_VIOLATIONS.labels(_action)

# The statuses whose request was refused for what it held (a message, counted refused).
_REFUSED_CONTENT = frozenset({400, 413, 422})
UNMATCHED = "none"

# The observer of this process, when GATEWAY_METRICS_PORT is set (``enable``).
_observer: RequestMetrics | None = None


class _Tally:
    """What one (route, status) counted since the last flush, and where it goes."""

    __slots__ = ("body_bytes", "buckets", "count", "refused", "seconds", "to")

    def __init__(self, to: tuple[Any, Any, Any, Any]) -> None:
        self.to = to  # the label children: requests, seconds, body bytes, refused
        self.count = self.body_bytes = self.refused = 0
        self.seconds = 0.0
        self.buckets = [0] * len(_BOUNDS)

    def flush(self) -> None:
        if not self.count:
            return
        requests, seconds, body_bytes, refused = self.to
        requests.inc(self.count)
        add_observations(seconds, self.buckets, self.seconds)
        if self.body_bytes:
            body_bytes.inc(self.body_bytes)
        if self.refused:
            refused.inc(self.refused)
        self.count = self.body_bytes = self.refused = 0
        self.seconds = 0.0
        self.buckets = [0] * len(_BOUNDS)


_BOUNDS = (*REQUEST_SECONDS._upper_bounds,)


def add_observations(histogram: Any, buckets: list[int], total: float) -> None:
    """Add to a histogram's child ``buckets[i]`` observations in its bucket ``i`` and
    their ``total``: what ``observe`` would have made of them, in one step per bucket.

    prometheus_client has no call for it: this writes the child's bucket and sum values
    as ``observe`` does (tests/gateway/test_metrics.py checks the two agree).
    """
    for i, count in enumerate(buckets):
        if count:
            histogram._buckets[i].inc(count)
    histogram._sum.inc(total)


class RequestMetrics:
    """Counts each answered request: ``Routes`` calls it with the route matched (or
    None), the status and when it started; the surface label of each route is given
    once, by the application that knows which surface declared it.

    A request adds to plain numbers (half a microsecond); ``flush``, once a second,
    hands them to prometheus_client (whose every call takes about one, more in
    multiprocess mode: a fifth of a small write's cost if made per request).
    """

    def __init__(self, surfaces: Iterable[tuple[str, Iterable[Route]]]) -> None:
        self._surface = {id(route): name for name, routes in surfaces for route in routes}
        self._tallies: dict[tuple[int, int], _Tally] = {}
        self._accepted: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self.in_flight = 0

    def surface(self, route: Route | None) -> str:
        return UNMATCHED if route is None else self._surface.get(id(route), "other")

    def __call__(self, scope: Scope, route: Route | None, status: int, started: float) -> None:
        tally = self._tallies.get((id(route), status)) or self._tally(route, status)
        seconds = perf_counter() - started
        tally.count += 1
        tally.seconds += seconds
        tally.buckets[bisect_left(_BOUNDS, seconds)] += 1
        tally.body_bytes += scope.get(BODY_BYTES_KEY, 0)
        if status in _REFUSED_CONTENT:
            tally.refused += 1

    def messages(self, scope: Scope, accepted: int, refused: int) -> None:
        surface = self.surface(scope.get("route"))
        if accepted:
            self._accepted[surface] = self._accepted.get(surface, 0) + accepted
        if refused:
            self._refused[surface] = self._refused.get(surface, 0) + refused

    def flush(self) -> None:
        """Hand what was counted since the last flush to prometheus_client."""
        for tally in self._tallies.values():
            tally.flush()
        for outcome, counts in (("accepted", self._accepted), ("refused", self._refused)):
            for surface, count in counts.items():
                MESSAGES.labels(surface, outcome).inc(count)
            counts.clear()
        IN_FLIGHT.set(self.in_flight)

    def _tally(self, route: Route | None, status: int) -> _Tally:
        surface = self.surface(route)
        method, template = (route.method, route.path) if route else ("", UNMATCHED)
        tally = _Tally(
            (
                REQUESTS.labels(surface, method, template, str(status)),
                REQUEST_SECONDS.labels(surface),
                BODY_BYTES.labels(surface),
                MESSAGES.labels(surface, "refused"),
            )
        )
        self._tallies[(id(route), status)] = tally
        return tally


# Writes counted by (counter, label) since the last flush: the overflow lane's are
# counted per request of a flood, where a prometheus_client call each would cost.
_counts: collections.Counter[tuple[Counter, str]] = collections.Counter()


def written(
    scope: Scope,
    accepted: int,
    refused: int = 0,
    violations: Mapping[str, int] | None = None,
    controls: Iterable[str] = (),
) -> None:
    """Count the writes of one request, once they were published: ``accepted``, the
    items its surface ``refused``, those that broke the tracking plan by the action it
    took (``violations``), and the team's ``controls`` that acted on them."""
    if _observer is None:
        return
    _observer.messages(scope, accepted, refused)
    for action, count in (violations or {}).items():
        _counts[(TRACKING_VIOLATIONS, action)] += count
    for control in controls:
        _counts[(CONTROLLED_MESSAGES, control)] += accepted


def published(started: float) -> None:
    if _observer is not None:
        PUBLISH_SECONDS.observe(perf_counter() - started)


def publish_failed(reason: str) -> None:
    if _observer is not None:
        PUBLISH_FAILURES.labels(reason).inc()


def overflowed(reason: str, messages: int) -> None:
    """``messages`` of a request went to the overflow lane, for ``reason``."""
    if _observer is not None:
        _counts[(OVERFLOW_MESSAGES, reason)] += messages


def teams_controlled(counts: dict[str, int]) -> None:
    """How many teams are under each control (every control named, 0 included)."""
    for control, teams in counts.items():
        TEAM_CONTROLS.labels(control).set(teams)


def _flush_counts() -> None:
    counted = list(_counts.items())
    _counts.clear()
    for (counter, label), value in counted:
        counter.labels(label).inc(value)


def enable(observer: RequestMetrics) -> None:
    """Count in this process (``GATEWAY_METRICS_PORT`` is set), routes by ``observer``."""
    global _observer
    _observer = observer


def forget_process() -> None:
    """A worker that stops takes its gauges with it (multiprocess mode)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class Sampler:
    """Every ``interval_s``: the observer's counts flushed, readiness sampled."""

    def __init__(
        self,
        observer: RequestMetrics,
        kafka_ready: Callable[[], bool],
        postgres_ready: Callable[[], Awaitable[bool]],
        interval_s: float = 1.0,
    ) -> None:
        self._observer = observer
        self._kafka_ready = kafka_ready
        self._postgres_ready = postgres_ready
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._observer.flush()  # the last second's counts
        _flush_counts()

    async def _sample(self) -> None:
        while True:
            self._observer.flush()
            _flush_counts()
            READY.labels("kafka").set(1 if self._kafka_ready() else 0)
            try:
                async with asyncio.timeout(self._interval_s):
                    postgres = await self._postgres_ready()
            except Exception:  # unreachable, timed out: not ready
                postgres = False
            READY.labels("postgres").set(1 if postgres else 0)
            await asyncio.sleep(self._interval_s)
