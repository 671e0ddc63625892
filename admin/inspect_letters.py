"""``ingest-admin list-dead-letters`` and ``show-dead-letter``: look before a replay or a purge.

    ingest-admin list-dead-letters [--partition P ...] [--since TIME] [--until TIME]
                 [--reason-contains TEXT] [--team ID] [--samples N] [--json]
    ingest-admin show-dead-letter PARTITION:OFFSET [--hex] [--json]

``list-dead-letters`` reads the dead-letter topic (``DEAD_LETTER_TOPIC``) from each
partition's start, or from ``--since``, to its end when the command started (or
``--until``); times by Kafka's time index: when the letter was dead-lettered. It
counts the selected letters by reason class (the ``reason`` label of
``ingest_consumer_dead_letters_total``: ``undecodable``, ``unsupported_version``,
``refused``, ``apply_failed``) and the reason's first words, with when the first and
last were dead-lettered, and shows up to ``--samples`` letters of each (3).
``--reason-contains`` and ``--team`` select letters as the replay does
(``admin.dead_letters.Selection``).

``show-dead-letter`` prints one letter: when, its team (``Letter.teams``: its
writes', else its key's), its key, every header (``reason``,
``source``: the writes topic, partition and offset it came from) and its original
bytes with their size, as text with everything unprintable escaped (``\\xNN`` for a
byte that is not UTF-8, ``\\\\`` for a backslash), or as a hex dump (``--hex``).
``--json`` gives the value in base64, exact.

Both only read: no consumer group, no offsets moved. Imports ``admin.dead_letters``,
``admin.errors``, ``admin.terminal``, ``admin.topic_reader``, ``runtime.settings`` and
the consumers' reason classes (``consumers.metrics.reason_label``).
"""

from __future__ import annotations

import argparse
import base64
from collections import defaultdict
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from admin.dead_letters import (
    Letter,
    Selection,
    add_selection_arguments,
    letter_spans,
    letters_in,
)
from admin.errors import CommandError
from admin.terminal import stamp, table, to_json
from admin.topic_reader import Clients, Span, bounds, kafka_clients
from consumers.metrics import reason_label
from runtime.settings import Settings

COMMANDS = frozenset({"list-dead-letters", "show-dead-letter"})

CLIENT_ID = "ingest-admin-inspect"
SAMPLES = 3
SAMPLE_BYTES = 160
# The reason's first words, up to its first ": " (an error's type, "undecodable message").
HEAD_CHARS = 48
HEX_WIDTH = 16


def add_parsers(sub: Any) -> None:
    """Add the commands to ``ingest-admin``'s subparsers."""
    listing = sub.add_parser("list-dead-letters", help="count dead letters by reason, with samples")
    add_selection_arguments(listing)
    listing.add_argument(
        "--samples", type=int, default=SAMPLES, metavar="N", help="letters shown per reason (3)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show-dead-letter", help="one dead letter: headers and original bytes")
    show.add_argument("place", metavar="PARTITION:OFFSET", help="e.g. 0:42")
    show.add_argument("--hex", action="store_true", help="the value as a hex dump")
    show.add_argument("--json", action="store_true", help="print JSON (the value in base64)")


async def run(settings: Settings, args: argparse.Namespace) -> str:
    """Run one of ``COMMANDS``; returns what to print."""
    async with kafka_clients(settings, CLIENT_ID) as kafka:
        if args.command == "show-dead-letter":
            letter = await find_letter(kafka, settings.dead_letter_topic, *_place(args.place))
            if args.json:
                return to_json(letter_json(settings.dead_letter_topic, letter))
            return shown(settings.dead_letter_topic, letter, hex_dump=args.hex)
        if args.samples < 0:
            raise CommandError("--samples must be 0 or more")
        found = await survey(kafka, settings.dead_letter_topic, Selection.of(args), args.samples)
        return to_json(found.as_json()) if args.json else found.report()


# -- list ---------------------------------------------------------------------------


@dataclass
class Group:
    """The selected letters of one reason: how many, when, a few of them."""

    count: int = 0
    first_ms: int = -1
    last_ms: int = -1
    samples: list[Letter] = field(default_factory=list)

    def add(self, letter: Letter, samples: int) -> None:
        self.count += 1
        at = letter.timestamp_ms
        self.first_ms = at if self.first_ms < 0 else min(self.first_ms, at)
        self.last_ms = max(self.last_ms, at)
        if len(self.samples) < samples:
            self.samples.append(letter)


@dataclass
class Survey:
    """What ``list-dead-letters`` found: per partition the offsets read and how many
    letters were selected; per (reason class, reason's first words) a ``Group``."""

    topic: str
    spans: dict[TopicPartition, Span]
    selected: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)

    def report(self) -> str:
        total = sum(self.selected.values())
        read = sum(span.end - span.start for span in self.spans.values())
        lines = [
            f"{self.topic}: {total} letter(s) selected of {read} read",
            table(
                ["partition", "from", "to", "selected"],
                (
                    [tp.partition, span.start, span.end, self.selected[tp.partition]]
                    for tp, span in self.spans.items()
                ),
            ),
        ]
        if not self.groups:
            return "\n".join(lines)
        ordered = sorted(self.groups.items(), key=lambda item: (-item[1].count, item[0]))
        lines += [
            "",
            table(
                ["class", "reason", "letters", "first", "last"],
                (
                    [cls, head, g.count, stamp(g.first_ms), stamp(g.last_ms)]
                    for (cls, head), g in ordered
                ),
            ),
        ]
        for (cls, head), group in ordered:
            if group.samples:
                lines += ["", f"{cls} / {head}:"]
                lines += [_sample(letter) for letter in group.samples]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partitions": [
                {
                    "partition": tp.partition,
                    "from": span.start,
                    "to": span.end,
                    "selected": self.selected[tp.partition],
                }
                for tp, span in self.spans.items()
            ],
            "letters": sum(self.selected.values()),
            "reasons": [
                {
                    "class": cls,
                    "reason": head,
                    "letters": g.count,
                    "first": stamp(g.first_ms),
                    "last": stamp(g.last_ms),
                    "samples": [letter_json(self.topic, letter) for letter in g.samples],
                }
                for (cls, head), g in sorted(self.groups.items(), key=lambda i: -i[1].count)
            ],
        }


async def survey(kafka: Clients, topic: str, selection: Selection, samples: int) -> Survey:
    """Read the selected span of every selected partition; count and sample."""
    found = Survey(topic, await letter_spans(kafka, topic, selection))
    async for letter in letters_in(kafka.consumer, found.spans):
        if selection.wants(letter):
            found.selected[letter.partition] += 1
            key = (reason_label(letter.reason), reason_head(letter.reason))
            found.groups.setdefault(key, Group()).add(letter, samples)
    return found


def reason_head(reason: str) -> str:
    """The reason's first words: up to its first ``": "``, at most ``HEAD_CHARS``."""
    head = reason.split(": ", 1)[0].strip() or "(no reason)"
    return head if len(head) <= HEAD_CHARS else head[: HEAD_CHARS - 1] + "…"


def _sample(letter: Letter) -> str:
    more = "…" if len(letter.value) > SAMPLE_BYTES else ""
    key = "-" if letter.key is None else escaped(letter.key)
    return (
        f"  {letter.place}  {stamp(letter.timestamp_ms)}  from {letter.source or '?'}"
        f"  key {key}  {len(letter.value)} bytes\n"
        f"      {escaped(letter.reason.encode())}\n"
        f"      {escaped(letter.value[:SAMPLE_BYTES])}{more}"
    )


# -- show ---------------------------------------------------------------------------


def _place(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not (sep and partition.isdigit() and offset.isdigit()):
        raise CommandError(f"not PARTITION:OFFSET: {text!r}")
    return int(partition), int(offset)


async def find_letter(kafka: Clients, topic: str, partition: int, offset: int) -> Letter:
    """The letter at ``partition``:``offset``; ``CommandError`` naming what the
    partition holds when it is not there (never written, or purged)."""
    spans = await letter_spans(kafka, topic, Selection(partitions=frozenset({partition})))
    tp = TopicPartition(topic, partition)
    held = spans[tp]
    if held.start <= offset < held.end:
        async with aclosing(letters_in(kafka.consumer, {tp: Span(offset, offset + 1)})) as one:
            async for letter in one:
                return letter
    now = (await bounds(kafka.consumer, [tp]))[tp]
    holds = f"offsets {now.start} to {now.end - 1}" if now.end > now.start else "no letters"
    raise CommandError(f"no letter at {partition}:{offset}; partition {partition} holds {holds}")


def shown(topic: str, letter: Letter, *, hex_dump: bool = False) -> str:
    """One letter for people: when, key, headers, then the value."""
    rows: list[list[object]] = [
        ["dead-lettered", stamp(letter.timestamp_ms)],
        ["class", reason_label(letter.reason)],
        ["team", ", ".join(str(t) for t in sorted(letter.teams)) or "-"],
        ["key", "-" if letter.key is None else escaped(letter.key)],
    ]
    rows += [[f"header {name}", escaped(value)] for name, value in letter.headers]
    rows.append(["value", f"{len(letter.value)} bytes" + (", hex:" if hex_dump else ":")])
    body = hexdump(letter.value) if hex_dump else escaped(letter.value)
    return "\n".join([f"dead letter {letter.place} of {topic}", table(None, rows), body])


def letter_json(topic: str, letter: Letter) -> dict[str, Any]:
    """One letter for scripts: the key and value exactly, in base64."""
    return {
        "topic": topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "dead_lettered": stamp(letter.timestamp_ms),
        "class": reason_label(letter.reason),
        "teams": sorted(letter.teams),
        "reason": letter.reason,
        "source": letter.source,
        "headers": [[name, value.decode(errors="replace")] for name, value in letter.headers],
        "key_base64": None if letter.key is None else base64.b64encode(letter.key).decode(),
        "size": len(letter.value),
        "value_base64": base64.b64encode(letter.value).decode(),
    }


def escaped(raw: bytes) -> str:
    """``raw`` as text, unambiguous: UTF-8 as it is, but a backslash as ``\\\\``, a byte
    that is not UTF-8 as ``\\xNN`` and an unprintable character by its escape
    (``\\n``, ``\\x00``, ``\\u200b``)."""
    out = []
    for char in raw.decode("utf-8", "surrogateescape"):
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= ord(char) <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode())
    return "".join(out)


def hexdump(raw: bytes) -> str:
    """Offset, bytes in hex, and the printable ASCII of each, 16 bytes a line."""
    lines = []
    for at in range(0, len(raw), HEX_WIDTH):
        chunk = raw[at : at + HEX_WIDTH]
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{at:08x}  {chunk.hex(' '):<{HEX_WIDTH * 3 - 1}}  |{text}|")
    return "\n".join(lines)
