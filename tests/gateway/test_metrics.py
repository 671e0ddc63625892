"""The gateway's Prometheus metrics (``ingest_gateway/metrics.py``), served on
``GATEWAY_METRICS_PORT`` and summed over several uvicorn workers."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from ingest_gateway.metrics import add_observations
from runtime.settings import Settings
from tests.conftest import Team, private_gateway
from tests.support import eventually, free_port

WRITES = 12
CUSTOMER_ROUTE = {"surface": "000", "method": "POST", "route": "/api/1.0/customer/{email}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_two_workers_answer_with_the_sum_of_both(
    settings: Settings, tmp_path: Path, team: Team
) -> None:
    port = free_port()
    async with private_gateway(
        settings, tmp_path, "metrics-gateway", gateway_workers=2, gateway_metrics_port=port
    ) as (base, _):
        for n in range(WRITES):  # a connection each: both workers take some
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                address = f"metrics-{n}-{uuid.uuid4().hex[:6]}@example.com"
                sent = await http.post(
                    f"/api/1.0/customer/{address}", json={"n": n}, headers=team.headers
                )
                assert sent.status_code == 200, sent.text
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            refused = await http.post(
                "/api/1.0/customer/x@example.com", content=b"{", headers=team.headers
            )
            assert refused.status_code == 400

        async def scraped() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            async with httpx.AsyncClient(timeout=10) as client:
                found = samples((await client.get(f"http://127.0.0.1:{port}/metrics")).text)
            counted = value(found, "ingest_gateway_requests_total", **CUSTOMER_ROUTE, status="200")
            return found if counted == WRITES else None

        # Counts reach prometheus_client once a second; any worker may answer each scrape.
        for _ in range(3):
            found = await eventually(scraped, timeout=15, interval=0.2)
    accepted = {"surface": "000", "outcome": "accepted"}
    assert value(found, "ingest_gateway_messages_total", **accepted) == WRITES
    assert value(found, "ingest_gateway_messages_total", surface="000", outcome="refused") == 1
    assert value(found, "ingest_gateway_requests_total", **CUSTOMER_ROUTE, status="400") == 1
    assert (
        value(found, "ingest_gateway_request_duration_seconds_count", surface="000") == WRITES + 1
    )
    assert value(found, "ingest_gateway_request_body_bytes_total", surface="000") > WRITES * 6
    assert value(found, "ingest_gateway_publish_duration_seconds_count") >= 1
    assert value(found, "ingest_gateway_ready", service="kafka") == 1
    assert value(found, "ingest_gateway_ready", service="postgres") == 1
    reasons = {"broker_unavailable", "timeout", "too_large", "other"}
    assert reasons == {
        dict(labels)["reason"]
        for name, labels in found
        if name == "ingest_gateway_publish_failures_total"
    }


def test_observations_added_in_one_step_equal_those_observed_one_by_one() -> None:
    """``add_observations`` writes prometheus_client's histogram values directly: this
    fails if a new version of the library keeps them otherwise."""
    registry = CollectorRegistry()
    bounds = (0.01, 0.1, 1.0)
    observed = Histogram("observed_seconds", "", buckets=bounds, registry=registry)
    added = Histogram("added_seconds", "", buckets=bounds, registry=registry)
    values = [0.005, 0.01, 0.05, 0.5, 0.5, 3.0]
    for each in values:
        observed.observe(each)
    buckets = [sum(1 for v in values if lower < v <= upper) for lower, upper in
               zip((float("-inf"), *bounds), (*bounds, float("inf")), strict=True)]  # fmt: skip
    add_observations(added, buckets, sum(values))
    for suffix in ("_bucket", "_count", "_sum"):
        for le in ("0.01", "0.1", "1.0", "+Inf") if suffix == "_bucket" else ("",):
            labels = {"le": le} if le else {}
            assert registry.get_sample_value(f"observed_seconds{suffix}", labels) == (
                registry.get_sample_value(f"added_seconds{suffix}", labels)
            )
