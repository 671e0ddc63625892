"""The Prometheus and Grafana files of ``deploy/observability`` and the compose file
that runs them agree with each other and with the Kubernetes manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.deploy.kustomize import render
from tests.deploy.prometheus import CONFIG, check_config, ensure_prometheus
from tests.support import REPO

DEPLOY = REPO / "deploy"
OBSERVABILITY = DEPLOY / "observability"
COMPOSE = DEPLOY / "docker-compose.observability.yml"
KUBERNETES_SCRAPES = OBSERVABILITY / "prometheus" / "kubernetes.yml"
# The metrics port each job scrapes, by the setting that opens it.
PORT_SETTINGS = {
    "ingest-gateway": "GATEWAY_METRICS_PORT",
    "ingest-consumer": "METRICS_PORT",
    "ingest-consumer-supervisor": "SUPERVISOR_METRICS_PORT",
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_the_prometheus_configurations_are_valid(tmp_path: Path) -> None:
    ensure_prometheus()
    check_config(CONFIG)
    # Debian's promtool is built without Kubernetes discovery: the relabelling is
    # checked with the discovery swapped for a static target.
    config = load(KUBERNETES_SCRAPES)
    for job in config["scrape_configs"]:
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
    swapped = tmp_path / "kubernetes.yml"
    swapped.write_text(yaml.safe_dump(config))
    check_config(swapped)


def test_compose_opens_the_ports_prometheus_scrapes() -> None:
    compose = load(COMPOSE)["services"]
    for name, job in jobs(load(CONFIG)).items():
        (service,) = {n for discovery in job["dns_sd_configs"] for n in discovery["names"]}
        scraped = [discovery["port"] for discovery in job["dns_sd_configs"]]
        environment = compose[service]["environment"]
        assert scraped == _ports(name, environment), name


def _ports(job: str, environment: dict[str, str]) -> list[int]:
    """The ports ``job``'s processes open: a consumer worker i on METRICS_PORT + i, the
    main lane's workers first, then the overflow lane's."""
    port = int(environment[PORT_SETTINGS[job]])
    if job != "ingest-consumer":
        return [port]
    workers = sum(int(environment[n]) for n in _WORKERS)
    return [port + i for i in range(workers)]


_WORKERS = ("CONSUMER_PROCESSES", "CONSUMER_OVERFLOW_PROCESSES")


def test_compose_mounts_what_grafana_and_prometheus_read() -> None:
    compose = load(COMPOSE)["services"]
    mounts = {
        target: DEPLOY / source
        for service in ("prometheus", "grafana")
        for source, target, *_ in (v.split(":") for v in compose[service]["volumes"])
        if source.startswith("./")
    }
    assert all(path.exists() for path in mounts.values()), mounts
    assert mounts["/etc/prometheus/prometheus.yml"] == CONFIG.resolve()
    (provider,) = load(
        OBSERVABILITY / "grafana" / "provisioning" / "dashboards" / "customer-ingest.yml"
    )["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert list(dashboards.glob("*.json"))
    (source,) = load(OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    # Grafana's $__rate_interval is at least four of this: it must be the scrape interval.
    assert source["jsonData"]["timeInterval"] == load(CONFIG)["global"]["scrape_interval"]


def test_kubernetes_scrapes_keep_the_ports_the_pods_name() -> None:
    """Each job of kubernetes.yml keeps a (component, port name) pair that a
    Deployment of deploy/k8s has, on the port its setting opens."""
    scrapes = jobs(load(KUBERNETES_SCRAPES))
    assert scrapes.keys() == jobs(load(CONFIG)).keys()
    objects = render(DEPLOY / "k8s" / "overlays" / "production")
    pods = {
        o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in objects
        if o["kind"] == "Deployment"
    }
    (settings,) = [
        o["data"]
        for o in objects
        if (o["kind"], o["metadata"]["name"]) == ("ConfigMap", "ingest-config")
    ]
    for name, job in scrapes.items():
        (keep,) = [r for r in job["relabel_configs"] if "container_port_name" in str(r)]
        component, port_names = keep["regex"].split(";")
        (container,) = pods[component]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        environment = settings | {e["name"]: e["value"] for e in container["env"]}
        kept = [ports[n] for n in port_names.strip("()").split("|")]
        assert kept == _ports(name, environment), name
