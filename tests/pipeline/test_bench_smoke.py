"""``python -m bench`` end to end, tiny: every write accepted is stored, the outputs exist.

``segment100`` resends pre-built Segment batches whose messageIds the load generator
makes fresh on every send; its "0 lost" also proves that (a messageId sent twice is
stored once, which counts as lost).

No speed is asserted here: the numbers depend on the machine and on what else runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO


def test_a_tiny_benchmark_loses_nothing_and_writes_its_report(
    service_urls: tuple[str, str], tmp_path: Path
) -> None:
    kafka, database = service_urls
    out = tmp_path / "results"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": database}
    args = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--scenarios",
        "single,batch100,mixed,segment100",
        "--no-slo",
        "--ceiling-seconds",
        "1",
        "--gateway-workers",
        "1",
        "--consumer-processes",
        "1",
        "--loadgens",
        "1",
        "--connections",
        "4",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("results.json", "results.md", "throughput.png", "latency.png", "lag.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    scenarios = {s["name"]: s for s in results["scenarios"]}
    expected = {"single", "batch100", "mixed", "segment100", "naive-single", "naive-batch100"}
    assert expected <= set(scenarios)
    assert set(scenarios["segment100"]["statuses"]) == {"200"}
    for s in results["scenarios"]:
        assert s["accepted"] > 0, s["name"]
        assert s["lost"] == 0, s["name"]
    assert results["ceilings"]["raw_kafka"] > 0
    assert results["ceilings"]["raw_postgres"] > 0
    table = (out / "results.md").read_text()
    assert "| batches of 100 events |" in table
    assert "| Segment /v1/batch, 100 calls |" in table


@pytest.mark.parametrize("kind", ["single", "batch100", "segment100"])
def test_the_instruction_harness_serves_each_kind(kind: str) -> None:
    # In its own process: it stubs the publisher, the key cache and a team's blocked
    # values, which must not leak into the gateways of the other tests.
    done = subprocess.run(
        [sys.executable, "-m", "bench.instructions", kind, "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
