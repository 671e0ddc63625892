"""A real Prometheus for the tests: Debian's ``prometheus`` package, started on a free
port with a configuration made from ``deploy/observability/prometheus/prometheus.yml``.

The package is installed with apt-get when missing, as ``deploy/postgres/pg.sh``
installs PostgreSQL (as root; otherwise the test says what to run). Grafana is not
packaged by Debian, so the dashboard's expressions are run by Prometheus itself.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import REPO, Process, free_port, wait_for_http

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
CONFIG = REPO / "deploy" / "observability" / "prometheus" / "prometheus.yml"


def ensure_prometheus() -> None:
    """Install Debian's prometheus package when its binaries are missing."""
    if PROMETHEUS.exists() and PROMTOOL.exists():
        return
    if os.geteuid() != 0:
        pytest.fail("prometheus is not installed: sudo apt-get install -y prometheus")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def check_config(path: Path) -> None:
    """``promtool check config``; fails with what it said."""
    checked = subprocess.run(
        [str(PROMTOOL), "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def config_for(targets: dict[str, str], scrape_interval: str) -> dict[str, Any]:
    """The committed configuration, its jobs scraping ``targets`` (job -> host:port)."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs.keys() == targets.keys(), "the test scrapes the jobs the deployment does"
    for name, job in jobs.items():
        for discovery in [key for key in job if key.endswith("_sd_configs")]:
            del job[discovery]
        job["static_configs"] = [{"targets": [targets[name]]}]
    config["global"] |= {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval}
    return config


class Prometheus:
    """A running Prometheus and its HTTP API."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=10)

    async def query(self, expression: str) -> list[dict[str, Any]]:
        """The result of an instant query (``/api/v1/query``); fails on an error."""
        answer = await self.http.get("/api/v1/query", params={"query": expression})
        body = answer.json()
        assert body["status"] == "success", f"{expression}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def targets(self) -> list[dict[str, Any]]:
        answer = await self.http.get("/api/v1/targets", params={"state": "active"})
        active: list[dict[str, Any]] = answer.json()["data"]["activeTargets"]
        return active


@asynccontextmanager
async def prometheus(config: dict[str, Any], workdir: Path) -> AsyncIterator[Prometheus]:
    """Prometheus with ``config`` (checked by promtool first), on a free port, once
    ready; stopped after."""
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    await asyncio.to_thread(check_config, path)
    port = free_port()
    args = [
        str(PROMETHEUS),
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = Process("prometheus", args, {}, workdir)
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        await wait_for_http(f"{server.base}/-/ready", process, timeout=30)
        yield server
    finally:
        await server.http.aclose()
        process.stop()
