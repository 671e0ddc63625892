"""``ingest-admin list-dead-letters``, ``show-dead-letter`` and ``purge-dead-letters``
on the real Kafka.

Each test has a dead-letter topic (2 partitions) and a writes topic of its own, and
puts letters there as the consumers write them (the original bytes as the value,
``reason`` and ``source`` headers), at chosen partitions and times (minutes ago:
the broker's retention would delete older ones). Variations run the command in the
test's process (``command``); the command line itself (exit codes, a terminal or
none) through ``ingest-admin`` (``tool``).
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from subprocess import CompletedProcess
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from admin.errors import CommandError
from runtime.settings import Settings
from tests.admin.test_admin import admin, command
from tests.conftest import create_topics, settings_env


@pytest.fixture
async def own(settings: Settings, run_id: str) -> Settings:
    """The session's settings with a writes and a dead-letter topic of this test's own."""
    name = f"test.{run_id}.letters.{uuid.uuid4().hex[:6]}"
    topics = {"writes_topic": f"{name}.writes", "dead_letter_topic": f"{name}.dlq"}
    await create_topics(settings.kafka_bootstrap_servers, dict.fromkeys(topics.values(), 2))
    return settings.model_copy(update=topics)


@dataclass(frozen=True)
class Put:
    partition: int
    reason: str
    minutes_ago: float = 1
    value: bytes = b'{"id": "x"}'
    key: bytes | None = b"7:email:a@example.com"


FK = "ForeignKeyViolationError: insert or update on table customers violates a foreign key"
UNDECODABLE = "undecodable message: DecodeError: JSON is malformed"
REFUSED = "identifiers: 'null' is not an identifier"
VERSION = "unsupported wire version 9"


async def put(settings: Settings, *letters: Put) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        now_ms = int(time.time() * 1000)
        for n, letter in enumerate(letters):
            await producer.send_and_wait(
                settings.dead_letter_topic,
                letter.value,
                key=letter.key,
                partition=letter.partition,
                timestamp_ms=now_ms - int(letter.minutes_ago * 60_000),
                headers=[
                    ("reason", letter.reason.encode()),
                    ("source", f"{settings.writes_topic}/{letter.partition}/{n}".encode()),
                ],
            )
    finally:
        await producer.stop()


def tool(settings: Settings, *args: str, stdin: Any = None) -> CompletedProcess[str]:
    return admin(settings.database_url, *args, env=settings_env(settings), stdin=stdin)


async def listed(settings: Settings, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(
        await command(settings, "list-dead-letters", "--json", *args)
    )
    return found


def counts(found: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(r["class"], r["reason"]): r["letters"] for r in found["reasons"]}


def places(found: dict[str, Any]) -> set[str]:
    return {f"{s['partition']}:{s['offset']}" for r in found["reasons"] for s in r["samples"]}


async def test_list_counts_by_reason_within_partitions_times_and_reasons(own: Settings) -> None:
    await put(
        own,
        Put(0, UNDECODABLE, minutes_ago=50),
        Put(0, FK, minutes_ago=40),
        Put(0, FK, minutes_ago=30),
        Put(1, REFUSED, minutes_ago=20),
        Put(1, VERSION, minutes_ago=10),
    )
    everything = await listed(own)
    assert everything["letters"] == 5
    assert counts(everything) == {
        ("apply_failed", "ForeignKeyViolationError"): 2,
        ("undecodable", "undecodable message"): 1,
        ("refused", "identifiers"): 1,
        ("unsupported_version", VERSION): 1,
    }
    assert [(p["partition"], p["from"], p["to"]) for p in everything["partitions"]] == [
        (0, 0, 3),
        (1, 0, 2),
    ]
    fk = everything["reasons"][0]  # the most letters first
    assert fk["first"] < fk["last"]
    assert [s["offset"] for s in fk["samples"]] == [1, 2]
    assert base64.b64decode(fk["samples"][0]["value_base64"]) == b'{"id": "x"}'

    assert counts(await listed(own, "--partition", "1")) == {
        ("refused", "identifiers"): 1,
        ("unsupported_version", VERSION): 1,
    }
    assert (await listed(own, "--reason-contains", "FOREIGNKEY"))["letters"] == 2
    window = await listed(own, "--since", "35m", "--until", "15m")
    assert places(window) == {"0:2", "1:0"}
    assert len((await listed(own, "--samples", "1"))["reasons"][0]["samples"]) == 1

    # For people: a line per reason with its count, then the samples by place.
    text = tool(own, "list-dead-letters", "--reason-contains", "foreign")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == f"{own.dead_letter_topic}: 2 letter(s) selected of 5 read"
    assert re.search(r"^apply_failed\s+ForeignKeyViolationError\s+2\s", text.stdout, re.M)
    assert re.search(
        r"^  0:1  \S+Z  from \S+/0/1  key 7:email:a@example.com  11 bytes$", text.stdout, re.M
    )

    missing = tool(own, "list-dead-letters", "--partition", "5")
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("has no partition 5 (it has 2)")


async def test_show_prints_the_headers_and_the_original_bytes_exactly(own: Settings) -> None:
    value = b'\xff\x00{"a": "\\u00e9 \xc3\xa9"}\n'  # a byte that is not UTF-8, NUL, \, é, newline
    await put(own, Put(1, FK), Put(1, UNDECODABLE, value=value, key=None))

    shown = tool(own, "show-dead-letter", "1:1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"dead letter 1:1 of {own.dead_letter_topic}"
    assert re.fullmatch(r"key\s+-", lines[3])
    assert re.fullmatch(rf"header reason\s+{re.escape(UNDECODABLE)}", lines[4])
    assert re.fullmatch(rf"header source\s+{re.escape(own.writes_topic)}/1/1", lines[5])
    assert re.fullmatch(r"value\s+21 bytes:", lines[6])
    assert lines[7] == '\\xff\\x00{"a": "\\\\u00e9 é"}\\n'

    dump = (await command(own, "show-dead-letter", "1:1", "--hex")).splitlines()
    assert dump[-2:] == [
        '00000000  ff 00 7b 22 61 22 3a 20 22 5c 75 30 30 65 39 20  |..{"a": "\\u00e9 |',
        '00000010  c3 a9 22 7d 0a                                   |.."}.|',
    ]

    exact = orjson.loads(await command(own, "show-dead-letter", "1:1", "--json"))
    assert base64.b64decode(exact["value_base64"]) == value
    assert (exact["size"], exact["key_base64"], exact["class"]) == (21, None, "undecodable")
    assert exact["headers"] == [
        ["reason", UNDECODABLE],
        ["source", f"{own.writes_topic}/1/1"],
    ]

    with pytest.raises(CommandError, match="no letter at 1:2; partition 1 holds offsets 0 to 1"):
        await command(own, "show-dead-letter", "1:2")
    with pytest.raises(CommandError, match="not PARTITION:OFFSET: '1-2'"):
        await command(own, "show-dead-letter", "1-2")
