"""``python -m bench.instructions KIND N``: one kind of request through the gateway's
ASGI app in process, N times, with a publisher that only encodes (no Kafka) and a key
cache that always knows the key (no PostgreSQL), so that what an instruction counter
sees is the gateway's own work per request. KIND: ``single`` (``POST
/api/1.0/customer/{email}``), ``batch100`` (``POST /api/1.0/batch``, the bench's
batches of 100) or ``segment100`` (``POST /v1/batch``, 100 SDK calls). With
``--metrics`` after N, counted as with ``GATEWAY_METRICS_PORT`` set; with ``--plan``,
with the team's tracking plan active (``bench.tracking_plan``: 50 events of 10
properties; the cost of enforcing it, docs/tracking-plans.md).

Instructions per request, repeatable whatever else the machine does::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python -m bench.instructions segment100 0    # "Collected: A"
    valgrind ... segment100 20                                  # "Collected: B"
    # per request: (B - A) / 20

To compare with an older commit, run this file in a checkout of it, its imports
adapted to that commit's layout.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import MutableMapping
from typing import Any

import msgspec

from bench import tracking_plan
from bench.workload import SCENARIOS, auth_headers, stamp, templates
from ingest_gateway import app as app_module
from ingest_gateway.web import deps
from ingest_gateway.web.auth_cache import KeyCache
from ingest_gateway.write import blocked_values
from ingest_gateway.write.controls import TeamControls
from ingest_gateway.write.lanes import Lanes
from ingest_gateway.write.quotas import Quotas
from ingest_gateway.write.tracking import TrackingPlans
from runtime.gc import tune_gc
from runtime.settings import Settings

TEAM = 1


class AlwaysKnown(KeyCache):
    def get(self, digest: bytes) -> int | None:
        return TEAM


class EncodeOnly:
    async def publish(self, messages: Any, topic: str | None = None) -> None:
        msgspec.json.encode(list(messages))


def _no_blocked_values() -> None:
    blocked_values._BLOCKED[TEAM] = (frozenset(), float("inf"))


def request(kind: str) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    key = "k" * 32
    if kind == "single":
        body = b'{"name": "Ada", "plan": "gold", "signupDate": "2024-05-01"}'
        headers = {"X-API-KEY": key, "Content-Type": "application/json"}
        path = "/api/1.0/customer/ada@example.com"
    else:
        scenario = SCENARIOS[kind]
        template = templates(scenario, "cg", 2000, 1, seed=1)[0]
        body, path = stamp(template.body, 1), template.path
        headers = auth_headers(scenario, key) | {"Content-Type": "application/json"}
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    return path, body, raw


async def main(kind: str, n: int, metrics: bool, plan: bool = False) -> None:
    # --metrics: as a gateway with GATEWAY_METRICS_PORT set (the port itself is not
    # opened here: the lifespan does not run).
    settings = Settings(gateway_metrics_port=9 if metrics else 0)
    app = app_module.create_app(settings)
    gateway: Any = app
    while not isinstance(gateway, app_module.Gateway):
        gateway = gateway.app  # (each layer keeps the one it wraps as .app)
    gateway.services = deps.Services(
        settings=settings,
        db=None,  # type: ignore[arg-type]  # (no request here reads PostgreSQL)
        publisher=EncodeOnly(),  # type: ignore[arg-type]
        key_cache=AlwaysKnown(),
        quotas=Quotas(settings, None),
        controls=TeamControls(settings, None),
        lanes=Lanes(settings),
        plans=TrackingPlans(settings, None),
    )
    _no_blocked_values()
    if plan:
        gateway.services.plans.hold(TEAM, tracking_plan.compiled())
    path, body, headers = request(kind)

    async def once() -> int:
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8080),
            "scheme": "http",
            "root_path": "",
        }
        sent = False
        status = 0

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        return status

    for _ in range(3):  # warm: caches, imports
        status = await once()
    assert status in (200, 202), status
    tune_gc()  # as the gateway does once started
    for _ in range(n):
        await once()


if __name__ == "__main__":
    flags = sys.argv[3:]
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), "--metrics" in flags, "--plan" in flags))
