"""Logs (``runtime/logs.py``): one JSON object per line with ``LOG_FORMAT=json``, naming
the request, team and writes a line is about; the gateway's access log."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson

from runtime import logs
from runtime.settings import Settings
from tests.conftest import Team, private_gateway, settings_env
from tests.support import BIN, Process, eventually


def line(record: logging.LogRecord) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(logs.JsonFormatter("gateway").format(record))
    return parsed


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("ingest.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_line_about_a_request_names_it_its_team_and_its_writes() -> None:
    written = SimpleNamespace(id="m-1")  # a WriteMessage, as far as a log line looks
    scope: dict[str, Any] = {"headers": [(b"x-request-id", b"lb-42")]}
    logs.about_request(scope)
    scope[logs.TEAM_KEY] = 7
    scope[logs.MESSAGES_KEY] = [written]
    first, again = line(record("one %s", "x")), line(record())
    assert first["message"] == "one x" and first["level"] == "WARNING"
    assert first["process"] == "gateway" and first["logger"] == "ingest.test"
    assert (first["request_id"], first["team_id"], first["message_ids"]) == ("lb-42", 7, ["m-1"])
    assert again["request_id"] == "lb-42"


def test_a_request_without_a_usable_id_gets_one_that_stays_the_same() -> None:
    scope: dict[str, Any] = {"headers": [(b"x-request-id", b"has spaces\nand a newline")]}
    logs.about_request(scope)
    made = line(record())["request_id"]
    assert made != "has spaces\nand a newline" and line(record())["request_id"] == made
    logs.about_request({"headers": []})
    assert line(record())["request_id"] != made


def test_a_consumers_line_names_the_message_it_is_about() -> None:
    logs._request.set(None)  # a consumer: no request
    found = line(record("dead-lettering", message_id="m-9", team_id=3))
    assert (found["message_id"], found["team_id"]) == ("m-9", 3) and "request_id" not in found


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    return [orjson.loads(text) for text in path.read_text().splitlines() if text.strip()]


async def test_json_logs_and_the_access_log_of_a_running_gateway(
    settings: Settings, tmp_path: Path, team: Team
) -> None:
    async with private_gateway(
        settings, tmp_path, "json-gateway", log_format="json", access_log=True, gateway_workers=2
    ) as (base, gateway):
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            address = f"logs-{uuid.uuid4().hex[:8]}@example.com"
            sent = await http.post(
                f"/api/1.0/customer/{address}",
                json={"name": "Logged"},
                headers={**team.headers, "X-Request-Id": "req-abc-1"},
            )
            assert sent.status_code == 200

        async def access_line() -> dict[str, Any] | None:
            return next(
                (
                    each
                    for each in json_lines(gateway.log_path)
                    if each["logger"] == "ingest_gateway.access"
                    and each.get("request_id") == "req-abc-1"
                ),
                None,
            )

        found = await eventually(access_line, timeout=10)
    assert found["message"].startswith("POST /api/1.0/customer/{email} 200 ")
    assert address not in found["message"]  # the template, not the path
    assert found["team_id"] == team.id and len(found["message_ids"]) == 1
    assert {each["logger"] for each in json_lines(gateway.log_path)} >= {"uvicorn.error"}


async def test_a_consumers_lines_are_json_too(settings: Settings, tmp_path: Path) -> None:
    group = f"logs.{uuid.uuid4().hex[:8]}"
    env = settings_env(settings, log_format="json", consumer_group=group, metrics_port=0)
    consumer = Process("json-consumer", [str(BIN / "ingest-consumer")], env, tmp_path)
    try:

        async def started() -> bool:  # both workers: the main lane's and the overflow's
            lines = json_lines(consumer.log_path)
            return sum("consumer started" in each["message"] for each in lines) >= 2

        await eventually(started, timeout=60, interval=0.2)
    finally:
        consumer.stop()
    processes = {each["process"] for each in json_lines(consumer.log_path)}
    assert processes == {"supervisor", "consumer-0", "consumer-1-overflow"}
