"""``python -m bench.tracking_cost``: what enforcing a tracking plan costs the gateway.

The bench's requests through the gateway's ASGI app in process (``bench.instructions``:
no Kafka, no PostgreSQL, so the gateway's own work), with and without the realistic
plan of ``bench.tracking_plan`` (50 events of 10 properties) active for the team:
CPU seconds per request, alternated ABAB and the best of each kept (CPU time moves
with the machine's load; ``docs/tracking-plans.md`` has the load-independent
instruction counts). ``make bench`` adds its line to the report (``report.markdown``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import instructions, tracking_plan

# (kind, requests per timing, events per request)
KINDS = (("single", 400, 1), ("segment100", 20, 100))
ROUNDS = 3


def _cpu_per_request(kind: str, n: int, plan: bool) -> float:
    started = time.process_time()
    asyncio.run(instructions.main(kind, n, metrics=False, plan=plan))
    return (time.process_time() - started) / n


def measure() -> dict[str, Any]:
    """Per kind: CPU µs per event without and with the plan, and the ratio."""
    tracking_plan.compiled()  # compiled before the clock, as a gateway does at activation
    found: dict[str, Any] = {}
    for kind, n, events in KINDS:
        off: list[float] = []
        on: list[float] = []
        for _ in range(ROUNDS):
            off.append(_cpu_per_request(kind, n, plan=False))
            on.append(_cpu_per_request(kind, n, plan=True))
        without, with_plan = min(off) / events, min(on) / events
        found[kind] = {
            "us_per_event": round(without * 1e6, 2),
            "us_per_event_with_plan": round(with_plan * 1e6, 2),
            "added": round(with_plan / without - 1, 4),
        }
    return found


def line(found: dict[str, Any]) -> str:
    """The report's line."""
    parts = [
        f"{kind}: {x['us_per_event']} -> {x['us_per_event_with_plan']} us per event"
        f" ({x['added']:+.1%})"
        for kind, x in found.items()
    ]
    return "Tracking plan (50 events x 10 properties) enforced, gateway CPU: " + "; ".join(parts)


if __name__ == "__main__":
    print(line(measure()))
