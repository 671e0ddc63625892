"""Results as JSON, a Markdown table and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench import tracking_cost

COMPONENTS = ("gateway", "consumers", "kafka", "postgres", "loadgen")


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    rows = []
    head = (
        "| scenario | load | accepted ev/s | applied ev/s | HTTP p50 / p95 / p99 ms |"
        " queryable p50 / p99 ms | peak lag | CPU s / 1k ev (gw / cons / kafka / pg / load) |"
        " lost |"
    )
    rows.append(head)
    rows.append("|" + "---|" * 9)
    for s in results["scenarios"]:
        cpu = s["cpu_per_1k"]
        cpu_cell = " / ".join("-" if cpu.get(c) is None else f"{cpu[c]:.3f}" for c in COMPONENTS)
        rows.append(
            f"| {s['title']} | {s['load']} | {_num(s['accepted_per_s'])} |"
            f" {_num(s['applied_per_s'])} |"
            f" {_num(s['http_ms']['p50'], 1)} / {_num(s['http_ms']['p95'], 1)} /"
            f" {_num(s['http_ms']['p99'], 1)} |"
            f" {_num(s['queryable_ms']['p50'])} / {_num(s['queryable_ms']['p99'])} |"
            f" {_num(s['peak_lag'])} | {cpu_cell} | {s['lost']} |"
        )
    c = results["ceilings"]
    r = results["ratios"]
    rows += [
        "",
        "| ceiling / baseline | writes/s | our batched (100) e2e as a ratio |",
        "|---|---|---|",
        f"| raw Kafka (gateway's Publisher, no HTTP) | {_num(c.get('raw_kafka'))} |"
        f" {_ratio(r.get('vs_raw_kafka'))} |",
        f"| raw PostgreSQL (apply_batch, no Kafka) | {_num(c.get('raw_postgres'))} |"
        f" {_ratio(r.get('vs_raw_postgres'))} |",
        f"| lower ceiling | {_num(c.get('lower'))} | {_ratio(r.get('vs_lower_ceiling'))} |",
        f"| naive FastAPI -> PostgreSQL, 1 event / request | {_num(c.get('naive_single'))} |"
        f" single: {_ratio(r.get('single_vs_naive'))} |",
        f"| naive FastAPI -> PostgreSQL, batches of 100 | {_num(c.get('naive_batch100'))} |"
        f" {_ratio(r.get('vs_naive_batch100'))} |",
    ]
    search = results.get("sustained_search") or []
    if search:
        rows += [
            "",
            "Sustained search, batches of 100 (open loop; kept up = accepted >= 95% of offered,"
            " applied >= 97% of accepted, backlog drained within 5 s):",
            "",
            "| run | seconds | offered ev/s | accepted ev/s | applied ev/s | drain s |"
            " HTTP p99 ms | kept up |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows += [
            f"| {x['load']} | {x['seconds']:.0f} | {_num(x['offered_per_s'])} |"
            f" {_num(x['accepted_per_s'])} | {_num(x['applied_per_s'])} |"
            f" {x['drain_s']:.1f} | {_num(x['http_p99_ms'], 1)} |"
            f" {'yes' if x['kept_up'] else 'no'} |"
            for x in search
        ]
    t = results["targets"]
    rows += ["", "| target | measured | met |", "|---|---|---|"]
    rows += [f"| {x['target']} | {x['measured']} | {'yes' if x['met'] else 'NO'} |" for x in t]
    if results.get("tracking_plan"):
        rows += ["", tracking_cost.line(results["tracking_plan"])]
    cfg = results["config"]
    rows += [
        "",
        f"Run {results['started']}: {cfg['gateway_workers']} gateway process(es),"
        f" {cfg['consumer_processes']} consumer process(es), {cfg['loadgens']} load"
        f" generator process(es), {cfg['cpus']} CPUs; `{results['command']}`.",
    ]
    return "\n".join(rows) + "\n"


def _label(scenario: dict[str, Any]) -> str:
    return f"{scenario['name']} ({scenario['load']})"


def _lines(ax: Axes, scenarios: list[dict[str, Any]], part: str, x: str, y: str) -> None:
    """One line per scenario: ``scenario[part][x]`` against ``scenario[part][y]``."""
    for s in scenarios:
        ax.plot(s[part][x], s[part][y], label=_label(s))


def _decorate(
    ax: Axes, ylabel: str, xlabel: str | None = None, title: str | None = None, legend: bool = True
) -> None:
    ax.set_ylabel(ylabel)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=7)
    if title is not None:
        ax.set_title(title)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    scenarios = results["scenarios"]
    since_start = "seconds since the scenario started"
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    _lines(top, scenarios, "timeline", "t", "accepted_per_s")
    _lines(bottom, scenarios, "timeline", "applied_t", "applied_per_s")
    _decorate(top, "accepted writes/s (gateway)")
    _decorate(bottom, "applied writes/s (PostgreSQL)", since_start, legend=False)
    fig.suptitle("Throughput over time")
    throughput = _save(fig, out / "throughput.png")

    fig, ax = plt.subplots(figsize=(10, 5))
    _lines(ax, [s for s in scenarios if s["latency_cdf"]["ms"]], "latency_cdf", "ms", "q")
    ax.set_xscale("log")
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    _decorate(
        ax, "fraction of requests", "HTTP latency, ms (log)", "HTTP latency distribution (CDF)"
    )
    latency = _save(fig, out / "latency.png")

    fig, ax = plt.subplots(figsize=(10, 4))
    _lines(ax, scenarios, "timeline", "lag_t", "lag")
    _decorate(ax, "consumer lag (messages)", since_start, "Consumer lag over time")
    return [throughput, latency, _save(fig, out / "lag.png")]


def write(results: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(markdown(results))
    return [out / "results.json", out / "results.md", *plots(results, out)]
