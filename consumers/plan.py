"""Identity resolution and event rules for one batch, in pure Python.

This module's one job is policy: what a batch does to the store, decided without
I/O so that it reads as the rules and is unit-tested without a database
(``tests/consumers/test_plan.py``). It imports only ``consumers.rules`` and
``schemas``.

The unit of work (``consumers.unit_of_work``) asks it one question per batch:
``plan_batch`` replays the batch's messages in order against an in-memory view of
the customers they touch (read and locked before) and returns a ``Plan``, every
decision of the batch; ``consumers.statements`` writes it. The one thing only the
store can tell is whether an order was stored before;
``Plan.discard_stored_confirmations`` says what that means (a duplicate
confirmation, discarded).

Identity policy (docs/identity.md):

- Identifiers: email, phone, external id and our own customer id. Each belongs to at
  most one customer of a team. A customer may hold several emails and phones, but at
  most one external id.
- A write that names several identifiers asserts they are one person: identifiers
  nobody holds are attached, and the customers holding the others are merged. The
  survivor is the oldest customer (first seen by event time); attributes combine
  per attribute by newest event time; events and identifiers move to the survivor.
- Conflict rule: two customers with different external ids are never merged. The
  write goes to the customer of its external id (else the first one it names);
  identifiers held by a customer with another external id stay where they are.
- An unknown customer id is never created; a write naming only unknown
  identifiers creates a customer unless its API requires an existing one.
- Anonymous ids (Segment's ``anonymousId``) are identifiers like the others, many
  per customer: an anonymous customer holds only those, has no external id, and so
  merges into the identified customer a write links it to; two customers with
  different external ids are still never merged, whatever anonymous ids they share.
- A delete erases the customer and leaves a tombstone (the delete's message id) on
  every identifier the customer held and every one the delete named; a write (or a
  delete) naming a tombstoned identifier with a smaller message id was accepted
  before the delete and is discarded (``Rule.ERASED``): it was applied after the
  delete only because it travelled in another lane. A write accepted after the
  delete starts afresh. So a delete's effect does not depend on the apply order of
  the writes accepted before it (docs/identity.md, "Lanes and order").
- Groups (accounts, Segment's ``group``): a write naming a group puts its customer
  in it; the group's traits combine per trait by newest event time, like attributes.
- Client-identified events (004's ``id``): the later-accepted write replaces the
  stored event whatever its event time, ordered by the gateway's message ids
  (UUIDv7), so the result does not depend on which consumer applies first.
- Confirmations with an order id: the earliest-accepted (smallest message id) copy
  is kept, whichever is applied first; the others are discarded
  (``Rule.DUPLICATE_ORDER``), a stored one too when an earlier copy arrives later.
- Email opens: at most one per customer per window of event time, the windows fixed
  (``EMAIL_OPEN_WINDOW`` wide, counted from the Unix epoch); the earliest open of a
  window by (event time, message id) is kept, so a later-applied earlier open
  replaces the stored one (``Rule.EMAIL_OPEN_WINDOW``). (Before lanes this was
  greedy in apply order: an open within the window of a kept one, in either
  direction, was discarded.)
- Skip identity (``WriteMessage.skip_identity``, a per-team control): the write
  applies to the customer its first identifier names (``schemas.topics.KEY_PRECEDENCE``),
  creating one that holds only that identifier when none does and the API allows;
  no merge, no other identifier attached.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from consumers import rules
from schemas.messages import WriteMessage, acceptance_order
from schemas.outcomes import Outcome, Rule
from schemas.topics import KEY_PRECEDENCE

IdentifierKey = tuple[int, str, str]  # (team_id, kind, value)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class CustomerState:
    """A customer as the plan sees it. ``ref`` > 0 is a stored id, < 0 a new customer."""

    ref: int
    team_id: int
    attributes: dict[str, Any]
    versions: dict[str, str]
    first_seen_at: datetime
    last_updated_at: datetime
    external_ids: set[str] = field(default_factory=set)
    # Kept email opens as (event time, message id): stored ones in the windows the
    # batch's opens fall in, then the batch's own.
    email_opens: list[tuple[datetime, str]] = field(default_factory=list)
    changed: bool = False

    @property
    def is_new(self) -> bool:
        return self.ref < 0

    def age_key(self) -> tuple[datetime, bool, int]:
        return (self.first_seen_at, self.is_new, abs(self.ref))

    def seen(self, at: datetime) -> None:
        """A write of event time ``at`` applies to the customer: first seen no later."""
        if at < self.first_seen_at:
            self.first_seen_at = at
            self.changed = True

    def set_attributes(self, attributes: dict[str, Any], version: str, at: datetime) -> None:
        for name, value in attributes.items():
            if version >= self.versions.get(name, ""):
                self.attributes[name] = value
                self.versions[name] = version
                self.changed = True
                self.last_updated_at = max(self.last_updated_at, at)

    def absorb(self, other: CustomerState) -> None:
        """Combine ``other`` into this one: per attribute, the newest version wins."""
        for name, value in other.attributes.items():
            other_version = other.versions.get(name, "")
            if other_version > self.versions.get(name, ""):
                self.attributes[name] = value
                self.versions[name] = other_version
        self.first_seen_at = min(self.first_seen_at, other.first_seen_at)
        self.last_updated_at = max(self.last_updated_at, other.last_updated_at)
        self.external_ids |= other.external_ids
        self.email_opens.extend(other.email_opens)
        self.changed = True


class PlannedEvent(NamedTuple):
    # A tuple rather than a frozen dataclass: one is made per event, on the hot path.
    message: WriteMessage
    customer_ref: int


@dataclass(frozen=True)
class Merge:
    merged_id: int
    survivor_ref: int
    team_id: int
    message_id: str
    # Why: the kinds of the write's identifiers each customer held (customer_merges).
    merged_named_by: tuple[str, ...] = ()
    survivor_named_by: tuple[str, ...] = ()


@dataclass
class GroupState:
    """A group's traits as the batch's writes leave them: per trait, the newest
    version wins; ``statements.upsert_groups`` combines them the same way with the
    stored traits, so the stored group is never read."""

    traits: dict[str, Any]
    versions: dict[str, str]
    first_seen_at: datetime
    last_updated_at: datetime

    def set_traits(self, traits: dict[str, Any], version: str, at: datetime) -> None:
        for name, value in traits.items():
            if version >= self.versions.get(name, ""):
                self.traits[name] = value
                self.versions[name] = version
        self.first_seen_at = min(self.first_seen_at, at)
        self.last_updated_at = max(self.last_updated_at, at)


GroupKey = tuple[int, str]  # (team_id, group_id)
MembershipKey = tuple[int, str, int]  # (team_id, group_id, customer ref)


class StoredEvent(NamedTuple):
    """A stored event a later-applied message displaces (an earlier copy of its
    confirmation, an earlier email open of its window)."""

    team_id: int
    id: str  # the message id
    occurred_at: datetime


@dataclass
class Plan:
    created: list[CustomerState]
    updated: list[CustomerState]
    deleted: list[int]
    # Stored customers erased -> the message id of the delete (tombstones of their
    # stored identifiers, ``statements.delete_customers``).
    erasures: dict[int, str]
    # Identifiers the batch's deletes named or knew the erased customers by -> the
    # largest such delete's message id.
    tombstones: dict[IdentifierKey, str]
    merges: list[Merge]
    identifiers: list[tuple[int, str, str, int]]  # (team_id, kind, value, customer ref)
    events: list[PlannedEvent]
    groups: dict[GroupKey, GroupState]
    memberships: dict[MembershipKey, datetime]  # -> joined at (the first call's event time)
    outcomes: dict[str, Outcome]  # message id -> outcome, for messages not simply applied
    discarded: Counter[tuple[int, Rule, date]]  # (team, rule, day of the event) -> messages
    # Stored email opens displaced by an earlier open of their window in this batch.
    removed_opens: list[StoredEvent] = field(default_factory=list)
    # What the locked read found of tombstones on the identifiers the batch names:
    # ``statements.attach_identifiers`` retries the batch if a newer one appeared since.
    tombstones_read: dict[IdentifierKey, str] = field(default_factory=dict)

    def discard(self, message: WriteMessage, rule: Rule) -> None:
        _discard(self.outcomes, self.discarded, message, rule)

    def discard_stored_confirmations(
        self, refused: list[WriteMessage], displaced: Sequence[StoredEvent] = ()
    ) -> None:
        """``refused``: events whose order id the store already held with an earlier
        message id; ``displaced``: stored confirmations an earlier-accepted copy of
        this batch replaced. Both are duplicate confirmations, discarded."""
        for message in refused:
            self.discard(message, Rule.DUPLICATE_ORDER)
        for stored in displaced:
            _discard(self.outcomes, self.discarded, stored, Rule.DUPLICATE_ORDER)


def _discard(
    outcomes: dict[str, Outcome],
    counts: Counter[tuple[int, Rule, date]],
    message: WriteMessage | StoredEvent,
    rule: Rule,
) -> None:
    """``message``: of this batch, or applied by an earlier one (its event now taken out)."""
    outcomes[message.id] = Outcome.discarded(rule)
    counts[(message.team_id, rule, message.occurred_at.date())] += 1


def email_open_window_of(at: datetime, window: timedelta) -> int:
    """The fixed window of event time an email open falls in (counted from the epoch)."""
    return (at - EPOCH) // window


class _Planner:
    def __init__(
        self,
        owners: dict[IdentifierKey, int],
        customers: dict[int, CustomerState],
        email_open_window: timedelta,
        tombstones: dict[IdentifierKey, str],
    ) -> None:
        self.owners = dict(owners)
        self.customers = dict(customers)
        self.window = email_open_window
        self.tombstones_read = tombstones
        self.tombstones = dict(tombstones)
        self.new_tombstones: dict[IdentifierKey, str] = {}
        self.merged_into: dict[int, int] = {}
        self.deleted: dict[int, str] = {}  # ref -> the delete's message id
        self.dropped: set[str] = set()  # batch events a later-applied one displaced
        self.removed_opens: list[StoredEvent] = []
        self.batch_opens: dict[str, WriteMessage] = {}
        self.new_refs = itertools.count(-1, -1)
        self.new_identifiers: dict[IdentifierKey, int] = {}
        self.merges: list[Merge] = []
        self.events: list[PlannedEvent] = []
        self.outcomes: dict[str, Outcome] = {}
        self.discarded: Counter[tuple[int, Rule, date]] = Counter()
        # The kept confirmation of each order, and the event of each client id, so far.
        self.orders_seen: dict[tuple[int, str], PlannedEvent] = {}
        self.client_events: dict[tuple[int, str], int] = {}
        self.groups: dict[GroupKey, GroupState] = {}
        self.memberships: dict[MembershipKey, datetime] = {}

    def final(self, ref: int) -> int:
        while ref in self.merged_into:
            ref = self.merged_into[ref]
        return ref

    def owner(self, key: IdentifierKey) -> int | None:
        ref = self.owners.get(key)
        return None if ref is None else self.final(ref)

    def discard(self, message: WriteMessage, rule: Rule) -> None:
        _discard(self.outcomes, self.discarded, message, rule)

    # -- operations --------------------------------------------------------------

    def erased(self, message: WriteMessage, keys: list[IdentifierKey]) -> bool:
        """Whether a delete accepted after ``message`` erased a customer it names."""
        accepted = acceptance_order(message)  # (a Segment write's id is not a time)
        return any(self.tombstones.get(k, "") > accepted for k in keys)

    @staticmethod
    def named(message: WriteMessage, first: IdentifierKey | None) -> list[IdentifierKey]:
        """The identifiers a write applies by (of a skip-identity write, its first)."""
        if message.skip_identity:
            return [] if first is None else [first]
        return [(message.team_id, k, v) for k, v in message.identifiers.items()]

    def tombstone(self, key: IdentifierKey, message_id: str) -> None:
        if self.tombstones.get(key, "") < message_id:
            self.tombstones[key] = message_id
            self.new_tombstones[key] = message_id

    def delete(self, message: WriteMessage) -> None:
        keys = [(message.team_id, kind, value) for kind, value in message.identifiers.items()]
        if self.tombstones and self.erased(message, keys):
            # A later delete already erased what this one would: doing it again would
            # erase what writes accepted after that one built.
            self.discard(message, Rule.ERASED)
            return
        for key in keys:
            self.tombstone(key, message.id)
        erased = {r for r in (self.owner(k) for k in keys) if r is not None}
        for ref in erased:
            self.deleted[ref] = message.id
            # Everything that resolves to the erased customer is forgotten.
            for key in [k for k in self.owners if self.owner(k) == ref]:
                self.tombstone(key, message.id)
                del self.owners[key]
                self.new_identifiers.pop(key, None)
        if erased:
            # Its events are erased too: a later copy of one of its orders, or version of
            # one of its client events, is stored afresh.
            for order, kept in list(self.orders_seen.items()):
                if self.final(kept.customer_ref) in erased:
                    del self.orders_seen[order]
            for client_id, index in list(self.client_events.items()):
                if self.final(self.events[index].customer_ref) in erased:
                    del self.client_events[client_id]

    def new_customer(self, message: WriteMessage) -> CustomerState:
        ref = next(self.new_refs)
        customer = self.customers[ref] = CustomerState(
            ref=ref,
            team_id=message.team_id,
            attributes={},
            versions={},
            first_seen_at=message.occurred_at,
            last_updated_at=message.occurred_at,
            changed=True,
        )
        return customer

    def resolve_first(self, message: WriteMessage, key: IdentifierKey) -> CustomerState | None:
        """Skip identity: the customer ``key`` (the write's first identifier) names."""
        ref = self.owner(key)
        if ref is not None:
            customer = self.customers[ref]
            customer.seen(message.occurred_at)
            return customer
        _, kind, value = key
        if kind == "customer_id" or not message.create_if_missing:
            return None
        customer = self.new_customer(message)
        self.owners[key] = self.new_identifiers[key] = customer.ref
        if kind == "external_id":
            customer.external_ids.add(value)
        return customer

    def resolve(self, message: WriteMessage) -> CustomerState | None:
        """The customer a write applies to, creating and merging as the policy says."""
        team = message.team_id
        named = message.identifiers.items()
        if len(named) == 1:
            # The common case: one identifier, already held. Nothing to attach or merge.
            ref = self.owner((team, *named[0]))
            if ref is not None:
                customer = self.customers[ref]
                customer.seen(message.occurred_at)
                return customer
        held = [(kind, value, self.owner((team, kind, value))) for kind, value in named]
        if any(kind == "customer_id" and ref is None for kind, _, ref in held):
            return None  # our own ids are never invented by a write
        targets = list(dict.fromkeys(ref for _, _, ref in held if ref is not None))
        write_ext = message.identifiers.external_id
        if write_ext:
            wanted = {write_ext}
        else:
            anchor_ext = next(
                (self.customers[r].external_ids for r in targets if self.customers[r].external_ids),
                set(),
            )
            wanted = set(anchor_ext)
        group = [
            self.customers[r]
            for r in targets
            if not self.customers[r].external_ids or self.customers[r].external_ids == wanted
        ]
        if not group:
            if not message.create_if_missing:
                return None
            group = [self.new_customer(message)]
        survivor = min(group, key=CustomerState.age_key)
        for other in group:
            if other is survivor:
                continue
            survivor.absorb(other)
            self.merged_into[other.ref] = survivor.ref
            if not other.is_new:
                self.merges.append(
                    Merge(
                        other.ref,
                        survivor.ref,
                        team,
                        message.id,
                        tuple(kind for kind, _, holder in held if holder == other.ref),
                        tuple(kind for kind, _, holder in held if holder == survivor.ref),
                    )
                )
        for kind, value, holder in held:
            if holder is None:
                key = (team, kind, value)
                self.owners[key] = survivor.ref
                self.new_identifiers[key] = survivor.ref
                if kind == "external_id":
                    survivor.external_ids.add(value)
        survivor.seen(message.occurred_at)
        # An event alone leaves the customer row as it is: last_updated_at is the time
        # of the newest attribute change, and not rewriting the row keeps event batches cheap.
        return survivor

    def write(self, message: WriteMessage) -> None:
        event = message.event
        if event is not None and rules.is_bot(message.user_agent):
            self.discard(message, Rule.BOT)
            return
        first = first_identifier(message) if message.skip_identity else None
        if self.tombstones and self.erased(message, self.named(message, first)):
            # Applied before the delete, its customer part would have been erased with
            # the customer; its group's traits would not.
            if message.group is not None:
                self.set_group_traits(message)
            self.discard(message, Rule.ERASED)
            return
        if not message.skip_identity:
            customer = self.resolve(message)
        else:
            customer = None if first is None else self.resolve_first(message, first)
        if customer is None:
            self.discard(message, Rule.UNKNOWN_CUSTOMER)
            return
        if message.attributes:
            customer.set_attributes(
                message.attributes,
                rules.version(message.occurred_at, message.id),
                message.occurred_at,
            )
        if message.group is not None:
            self.join_group(message, customer)
        if event is None:
            return
        if event.kind == "confirmation" and event.order_id:
            # The earliest-accepted copy is kept, whichever is applied first.
            order = (message.team_id, event.order_id)
            kept = self.orders_seen.get(order)
            if kept is not None:
                if kept.message.id < message.id:
                    self.discard(message, Rule.DUPLICATE_ORDER)
                    return
                self.drop(kept.message, Rule.DUPLICATE_ORDER)
            self.orders_seen[order] = PlannedEvent(message, customer.ref)
        if (
            event.kind == "email_open"
            and self.window
            and not self.keep_email_open(message, customer)
        ):
            self.discard(message, Rule.EMAIL_OPEN_WINDOW)
            return
        if event.client_event_id:
            # Only the newest version of a client-identified event in the batch is written.
            key = (message.team_id, event.client_event_id)
            previous = self.client_events.get(key)
            if previous is not None:
                # The later-accepted write wins (module docstring), as in the store.
                if self.events[previous].message.id >= message.id:
                    return
                self.events[previous] = PlannedEvent(message, customer.ref)
                return
            self.client_events[key] = len(self.events)
        self.events.append(PlannedEvent(message, customer.ref))

    def drop(self, message: WriteMessage, rule: Rule) -> None:
        """Take out an event of the batch kept so far: a later-applied one displaces it."""
        self.dropped.add(message.id)
        self.discard(message, rule)

    def keep_email_open(self, message: WriteMessage, customer: CustomerState) -> bool:
        """Whether the open is the earliest of its window on the customer so far; the
        kept opens of its window it displaces are taken out."""
        opened = (message.occurred_at, message.id)
        window = email_open_window_of(message.occurred_at, self.window)
        same = [
            o for o in customer.email_opens if email_open_window_of(o[0], self.window) == window
        ]
        if any(o < opened for o in same):
            return False
        for at, message_id in same:
            customer.email_opens.remove((at, message_id))
            if message_id in self.batch_opens:
                self.drop(self.batch_opens[message_id], Rule.EMAIL_OPEN_WINDOW)
            else:
                stored = StoredEvent(customer.team_id, message_id, at)
                self.removed_opens.append(stored)
                _discard(self.outcomes, self.discarded, stored, Rule.EMAIL_OPEN_WINDOW)
        customer.email_opens.append(opened)
        self.batch_opens[message.id] = message
        return True

    def set_group_traits(self, message: WriteMessage) -> None:
        group = message.group
        assert group is not None
        at = message.occurred_at
        key = (message.team_id, group.group_id)
        state = self.groups.get(key)
        if state is None:
            state = self.groups[key] = GroupState({}, {}, at, at)
        state.set_traits(group.traits, rules.version(at, message.id), at)

    def join_group(self, message: WriteMessage, customer: CustomerState) -> None:
        self.set_group_traits(message)
        group = message.group
        assert group is not None
        at = message.occurred_at
        member = (message.team_id, group.group_id, customer.ref)
        self.memberships[member] = min(at, self.memberships.get(member, at))

    # -- result ------------------------------------------------------------------

    def result(self) -> Plan:
        live = {ref: c for ref, c in self.customers.items() if ref not in self.merged_into}
        final_deleted = {self.final(ref): mid for ref, mid in self.deleted.items()}
        erasures = {
            ref: final_deleted[self.final(ref)]
            for ref in self.customers
            if ref > 0 and self.final(ref) in final_deleted
        }
        deleted = list(erasures)
        merges = [m for m in self.merges if self.final(m.survivor_ref) not in final_deleted]
        merges = [replace(m, survivor_ref=self.final(m.survivor_ref)) for m in merges]
        created = [c for ref, c in live.items() if c.is_new and ref not in final_deleted]
        updated = [
            c for ref, c in live.items() if not c.is_new and c.changed and ref not in final_deleted
        ]
        identifiers = [
            (team, kind, value, self.final(ref))
            for (team, kind, value), ref in self.new_identifiers.items()
            if self.final(ref) not in final_deleted
        ]
        events = [
            e if ref == e.customer_ref else PlannedEvent(e.message, ref)
            for e in self.events
            if (ref := self.final(e.customer_ref)) not in final_deleted
            and e.message.id not in self.dropped
        ]
        memberships: dict[MembershipKey, datetime] = {}
        for (team, group_id, ref), joined_at in self.memberships.items():
            final = self.final(ref)
            if final not in final_deleted:
                member = (team, group_id, final)
                memberships[member] = min(joined_at, memberships.get(member, joined_at))
        return Plan(
            created=created,
            updated=updated,
            deleted=sorted(deleted),
            erasures=erasures,
            tombstones=self.new_tombstones,
            merges=merges,
            identifiers=identifiers,
            events=events,
            groups=self.groups,
            memberships=memberships,
            outcomes=self.outcomes,
            discarded=self.discarded,
            removed_opens=self.removed_opens,
            tombstones_read=self.tombstones_read,
        )


def first_identifier(message: WriteMessage) -> IdentifierKey | None:
    """The identifier a skip-identity write applies by: its first by ``KEY_PRECEDENCE``."""
    ids = message.identifiers
    for kind in KEY_PRECEDENCE:
        value = getattr(ids, kind)
        if value:
            return (message.team_id, kind, value)
    return None


def plan_batch(
    messages: list[WriteMessage],
    owners: dict[IdentifierKey, int],
    customers: dict[int, CustomerState],
    email_open_window: timedelta,
    tombstones: dict[IdentifierKey, str] | None = None,
) -> Plan:
    """What to write for ``messages``, applied in order, given the current owners.

    ``owners`` maps every identifier the batch names to its customer (when held);
    ``customers`` has the state of those customers, locked by the caller;
    ``tombstones`` the message id of the latest delete that erased a customer
    holding an identifier the batch names (when one did).
    """
    planner = _Planner(owners, customers, email_open_window, tombstones or {})
    for message in messages:
        if message.op == "delete_customer":
            planner.delete(message)
        else:
            planner.write(message)
    return planner.result()
