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
import os
import pty
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
from bench.writes import new_write
from runtime.settings import Settings
from schemas.messages import Identifiers, encode
from schemas.topics import partition_key
from tests.admin.test_admin import admin, command
from tests.admin.test_dead_letters import dlq_offsets, topic_records
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
    assert re.fullmatch(r"team\s+-", lines[3])  # undecodable, and no key to name one
    assert re.fullmatch(r"key\s+-", lines[4])
    assert re.fullmatch(rf"header reason\s+{re.escape(UNDECODABLE)}", lines[5])
    assert re.fullmatch(rf"header source\s+{re.escape(own.writes_topic)}/1/1", lines[6])
    assert re.fullmatch(r"value\s+21 bytes:", lines[7])
    assert lines[8] == '\\xff\\x00{"a": "\\\\u00e9 é"}\\n'

    dump = (await command(own, "show-dead-letter", "1:1", "--hex")).splitlines()
    assert dump[-2:] == [
        '00000000  ff 00 7b 22 61 22 3a 20 22 5c 75 30 30 65 39 20  |..{"a": "\\u00e9 |',
        '00000010  c3 a9 22 7d 0a                                   |.."}.|',
    ]

    exact = orjson.loads(await command(own, "show-dead-letter", "1:1", "--json"))
    assert base64.b64decode(exact["value_base64"]) == value
    assert (exact["size"], exact["key_base64"], exact["class"]) == (21, None, "undecodable")
    assert exact["teams"] == []
    # A letter that does not decode either, but whose key names its team.
    keyed = orjson.loads(await command(own, "show-dead-letter", "1:0", "--json"))
    assert keyed["teams"] == [7]
    assert exact["headers"] == [
        ["reason", UNDECODABLE],
        ["source", f"{own.writes_topic}/1/1"],
    ]

    with pytest.raises(CommandError, match="no letter at 1:2; partition 1 holds offsets 0 to 1"):
        await command(own, "show-dead-letter", "1:2")
    with pytest.raises(CommandError, match="not PARTITION:OFFSET: '1-2'"):
        await command(own, "show-dead-letter", "1-2")


def at_terminal(settings: Settings, answer: str, *args: str) -> CompletedProcess[str]:
    """Run the command with a terminal as its input, typing ``answer`` there."""
    typed, terminal = pty.openpty()
    try:
        os.write(typed, answer.encode() + b"\n")
        return tool(settings, *args, stdin=terminal)
    finally:
        os.close(typed)
        os.close(terminal)


async def test_purge_deletes_the_selected_run_from_each_partitions_start(own: Settings) -> None:
    await put(own, Put(0, FK), Put(0, FK), Put(0, UNDECODABLE), Put(0, FK), Put(1, FK))
    purge = ("purge-dead-letters", "--reason-contains", "foreignkey")

    # Asked first: without --yes and without a terminal, nothing goes; nor at a
    # terminal answered "n", nor in a dry run. Each shows the plan.
    for refused in (
        tool(own, *purge),
        at_terminal(own, "n", *purge),
        tool(own, *purge, "--dry-run"),
    ):
        assert re.search(r"^\s+0\s+0\s+2\s+2\s+2$", refused.stdout, re.M), refused.stdout
        assert re.search(r"^\s+1\s+0\s+1\s+1\s+1$", refused.stdout, re.M)
        assert "by reason: apply_failed / ForeignKeyViolationError 3" in refused.stdout
        assert "kept: 1 selected letter(s) of partition 0, behind offset 2" in refused.stdout
    assert "not confirmed: run again with --yes" in tool(own, *purge).stderr
    assert (await listed(own))["letters"] == 5

    done = at_terminal(own, "y", *purge)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"purged 3 dead letter(s); {own.dead_letter_topic} now starts:"
        " partition 0 from 2, partition 1 from 1"
    )
    left = await listed(own)
    assert places(left) == {"0:2", "0:3"}
    with pytest.raises(CommandError, match="partition 0 holds offsets 2 to 3"):
        await command(own, "show-dead-letter", "0:1")

    # The run now starts with a letter that is not selected: nothing to purge.
    again = await command(own, *purge, "--yes")
    assert again.splitlines() == [
        f"nothing to purge in {own.dead_letter_topic}",
        "kept: 1 selected letter(s) of partition 0, behind offset 2, which is not selected",
    ]


async def test_purge_what_the_replay_read_and_replay_after_a_purge(
    own: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await put(own, Put(0, FK, minutes_ago=30), Put(0, FK, minutes_ago=20), Put(0, FK))
    await command(own, "replay-dead-letters", "--limit", "2")
    assert (await dlq_offsets(own))[0] == {0: 2}

    replayed = await command(own, "purge-dead-letters", "--replayed", "--yes")
    assert replayed.endswith("now starts: partition 0 from 2")
    assert "not reached by a replay" not in capsys.readouterr().out  # the plan

    # Letters the replay has not reached are purged only when selected, and the
    # plan says so; the replay then goes on from the partition's new start.
    older = await command(own, "purge-dead-letters", "--until", "5m", "--yes")
    assert older == f"nothing to purge in {own.dead_letter_topic}"  # the last is 1 min old
    everything = await command(own, "purge-dead-letters", "--yes")
    assert everything.endswith("now starts: partition 0 from 3")
    assert "1 of them not reached by a replay yet (ingest-admin-replay)" in capsys.readouterr().out
    await put(own, Put(0, VERSION))
    after = await command(own, "replay-dead-letters")
    assert after == "replayed 1 dead letter(s), skipped 0"
    assert (await dlq_offsets(own))[0] == {0: 4}


async def test_a_team_lists_and_replays_only_the_letters_of_its_writes(own: Settings) -> None:
    ana = Identifiers(email="ana@example.com")
    ours, theirs = new_write(7, "upsert_customer", ana), new_write(8, "upsert_customer", ana)
    await put(
        own,
        Put(0, FK, value=encode(ours), key=partition_key(7, ana)),
        Put(0, FK, value=encode(theirs), key=partition_key(8, ana)),
        # Not a message: the team its key names.
        Put(1, UNDECODABLE, key=partition_key(7, ana)),
        Put(1, UNDECODABLE, key=None),  # no team at all
    )
    assert places(await listed(own, "--team", "7")) == {"0:0", "1:0"}
    assert places(await listed(own, "--team", "8")) == {"0:1"}
    assert (await listed(own, "--team", "9"))["letters"] == 0
    assert (await listed(own, "--team", "7", "--reason-contains", "foreignkey"))["letters"] == 1

    replayed = tool(own, "replay-dead-letters", "--team", "7")
    assert replayed.stdout.strip() == "replayed 2 dead letter(s), skipped 2", replayed.stderr
    assert sorted(await topic_records(own, own.writes_topic)) == sorted(
        [(partition_key(7, ana), encode(ours)), (partition_key(7, ana), b'{"id": "x"}')]
    )
    # The group moved past the other letters, as past any skipped one.
    assert (await dlq_offsets(own))[0] == {0: 2, 1: 2}

    # A purge cannot take one team's letters alone, and says so.
    refused = tool(own, "purge-dead-letters", "--team", "7", "--yes")
    assert refused.returncode == 1
    assert "purge-dead-letters takes no --team" in refused.stderr
    assert "There is no --team" in " ".join(
        tool(own, "purge-dead-letters", "--help").stdout.split()
    )
    assert (await listed(own))["letters"] == 4
