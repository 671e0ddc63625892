"""``ingest-admin purge-dead-letters``: delete dead letters from Kafka, for good.

    ingest-admin purge-dead-letters [--partition P ...] [--until TIME]
                 [--reason-contains TEXT] [--replayed] [--dry-run] [--yes]

Kafka cannot delete one record of a topic: it deletes a partition's records from
its start up to an offset (the DeleteRecords request; the partition's start moves
there, the disk space is freed by the broker's log cleaner). So a purge deletes, in
each selected partition, **the longest run of letters from the partition's start
that all belong to the selection**, and no further:

- ``--partition P``: only these partitions (default: every one);
- ``--until TIME``: letters dead-lettered before TIME (Kafka's time index, as
  ``list-dead-letters``);
- ``--reason-contains TEXT``: letters whose reason contains TEXT; the run stops at
  the first letter whose reason does not, and the selected letters behind it stay
  (the plan says how many);
- ``--replayed``: letters the replay's group (``ingest-admin-replay``) has moved past
  already, replayed or skipped.

**No ``--team``.** Every team's letters interleave in every partition, so the run
of one team's letters from a partition's start ends at the first letter of another
team, and nearly all of that team's letters would stay while the command looked as
if it had purged them. Kafka deletes no record on its own, so there is no honest
per-team purge: the topic's retention (``retention.ms``) removes a team's letters
with everyone's, and a purge up to an offset takes every team's letters before it.
(``--reason-contains`` has the same shape, but one cause's letters arrive together.)

Nothing is deleted before the operator saw the plan (per partition, from which
offset to which, how many letters, by reason, how many of them the replay has not
reached yet, how many selected letters stay) and agreed: ``--yes``, or ``y`` at a
terminal; ``--dry-run`` prints the plan only. The offsets are fixed by the plan, so a
letter dead-lettered while the operator reads it is never deleted.

The replay's group keeps working: an offset it committed that was purged reads from
the partition's new start. Imports ``admin.dead_letters``, ``admin.errors``,
``admin.inspect_letters``, the consumers' reason classes
(``consumers.metrics.reason_label``), ``admin.terminal``, ``admin.topic_reader`` and
``runtime.settings``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from admin.dead_letters import (
    GROUP,
    Selection,
    add_selection_arguments,
    letter_spans,
    letters_in,
)
from admin.errors import CommandError
from admin.inspect_letters import reason_head
from admin.terminal import confirm, table
from admin.topic_reader import Clients, Span, committed, kafka_clients
from consumers.metrics import reason_label
from runtime.settings import Settings

COMMANDS = frozenset({"purge-dead-letters"})

CLIENT_ID = "ingest-admin-purge"

NO_TEAM = (
    "purge-dead-letters takes no --team: every team's letters interleave in each"
    " partition, and Kafka deletes only from a partition's start, so one team's letters"
    " cannot be deleted alone (see purge-dead-letters --help). List them with"
    " list-dead-letters --team, replay them with replay-dead-letters --team"
)


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    purge = sub.add_parser(
        "purge-dead-letters",
        help="delete dead letters for good, from each partition's start (asks first)",
        description=(
            "Delete dead letters for good: in each selected partition, the longest run of"
            " selected letters from its start (Kafka deletes a partition's records up to an"
            " offset, never one alone). There is no --team: every team's letters interleave,"
            " so a run of one team's letters would end at the first letter of another team"
            " and leave nearly all of them. One team's letters go with the topic's retention"
            " (retention.ms), or with every team's letters up to an offset."
        ),
    )
    add_selection_arguments(purge, since=False, team=False)
    # Parsed only to be refused with the reason, rather than as an unknown argument.
    purge.add_argument("--team", type=int, help=argparse.SUPPRESS)
    purge.add_argument(
        "--replayed",
        action="store_true",
        help=f"only letters the replay's group ({GROUP}) has moved past",
    )
    purge.add_argument("--dry-run", action="store_true", help="print the plan; delete nothing")
    purge.add_argument("--yes", action="store_true", help="do not ask; delete what the plan says")


async def run(settings: Settings, args: argparse.Namespace) -> str:
    """Run ``purge-dead-letters``; returns what to print."""
    if args.team is not None:
        raise CommandError(NO_TEAM)
    topic = settings.dead_letter_topic
    async with kafka_clients(settings, CLIENT_ID) as kafka:
        cuts = await plan(kafka, topic, Selection.of(args), replayed_only=args.replayed)
        going = sum(cut.letters for cut in cuts)
        if not going:
            return f"nothing to purge in {topic}\n{_kept(cuts)}".rstrip()
        if args.dry_run:
            return f"{describe(topic, cuts)}\ndry run: nothing deleted"
        confirm(describe(topic, cuts), args.yes)
        starts = await purge(kafka, cuts)
    moved = ", ".join(f"partition {tp.partition} from {start}" for tp, start in starts.items())
    return f"purged {going} dead letter(s); {topic} now starts: {moved}"


@dataclass
class Cut:
    """What a purge deletes from one partition: the letters ``[start, upto)``."""

    tp: TopicPartition
    start: int
    upto: int
    # Where the replay's group is (None: it has read nothing of this partition).
    replay_at: int | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    not_replayed: int = 0
    # Selected letters that stay, behind the first letter that is not selected.
    kept: int = 0
    stopped_at: int | None = None  # that letter's offset

    @property
    def letters(self) -> int:
        return sum(self.reasons.values())


async def plan(
    kafka: Clients, topic: str, selection: Selection, *, replayed_only: bool = False
) -> list[Cut]:
    """Per selected partition, the run of selected letters from its start."""
    spans = await letter_spans(kafka, topic, selection)
    replay_at = await committed(kafka.admin, GROUP, list(spans))
    if replayed_only:
        spans = {
            tp: Span(span.start, max(span.start, min(span.end, replay_at[tp] or 0)))
            for tp, span in spans.items()
        }
    cuts = {tp: Cut(tp, span.start, span.start, replay_at[tp]) for tp, span in spans.items()}
    async for letter in letters_in(kafka.consumer, spans):
        cut = cuts[TopicPartition(topic, letter.partition)]
        wanted = selection.wants(letter)
        if cut.stopped_at is None and not wanted:
            cut.stopped_at = letter.offset
        if cut.stopped_at is not None:
            cut.kept += wanted
            continue
        cut.upto = letter.offset + 1
        cut.reasons[f"{reason_label(letter.reason)} / {reason_head(letter.reason)}"] += 1
        cut.not_replayed += cut.replay_at is None or letter.offset >= cut.replay_at
    return list(cuts.values())


def describe(topic: str, cuts: list[Cut]) -> str:
    """The plan, as the confirmation shows it."""
    reasons = sum((cut.reasons for cut in cuts), Counter[str]())
    lines = [
        f"purge from {topic}, for good (Kafka deletes from a partition's start up to an offset):",
        table(
            ["partition", "from", "up to", "letters", "not replayed"],
            (
                [cut.tp.partition, cut.start, cut.upto, cut.letters, cut.not_replayed]
                for cut in cuts
                if cut.letters
            ),
        ),
        "by reason: " + ", ".join(f"{name} {n}" for name, n in reasons.most_common()),
    ]
    not_replayed = sum(cut.not_replayed for cut in cuts)
    if not_replayed:
        lines.append(f"{not_replayed} of them not reached by a replay yet ({GROUP})")
    return "\n".join(filter(None, [*lines, _kept(cuts)]))


def _kept(cuts: list[Cut]) -> str:
    kept = [cut for cut in cuts if cut.kept]
    return "\n".join(
        f"kept: {cut.kept} selected letter(s) of partition {cut.tp.partition}, behind"
        f" offset {cut.stopped_at}, which is not selected"
        for cut in kept
    )


async def purge(kafka: Clients, cuts: list[Cut]) -> dict[TopicPartition, int]:
    """Delete what ``cuts`` say; the partitions' new starts."""
    wanted = {cut.tp: RecordsToDelete(cut.upto) for cut in cuts if cut.upto > cut.start}
    starts: dict[TopicPartition, int] = await kafka.admin.delete_records(wanted)
    return dict(sorted(starts.items()))
