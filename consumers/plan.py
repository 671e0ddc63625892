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
- A delete erases the customer; a later write for the same email starts afresh.
- Groups (accounts, Segment's ``group``): a write naming a group puts its customer
  in it; the group's traits combine per trait by newest event time, like attributes.
- Client-identified events (004's ``id``): the later-accepted write replaces the
  stored event whatever its event time, ordered by the gateway's message ids
  (UUIDv7), so the result does not depend on which consumer applies first.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from consumers import rules
from schemas.messages import WriteMessage
from schemas.outcomes import Outcome, Rule

IdentifierKey = tuple[int, str, str]  # (team_id, kind, value)


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
    email_opens: list[datetime] = field(default_factory=list)
    changed: bool = False

    @property
    def is_new(self) -> bool:
        return self.ref < 0

    def age_key(self) -> tuple[datetime, bool, int]:
        return (self.first_seen_at, self.is_new, abs(self.ref))

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


@dataclass
class Plan:
    created: list[CustomerState]
    updated: list[CustomerState]
    deleted: list[int]
    merges: list[Merge]
    identifiers: list[tuple[int, str, str, int]]  # (team_id, kind, value, customer ref)
    events: list[PlannedEvent]
    groups: dict[GroupKey, GroupState]
    memberships: dict[MembershipKey, datetime]  # -> joined at (the first call's event time)
    outcomes: dict[str, Outcome]  # message id -> outcome, for messages not simply applied
    discarded: Counter[tuple[int, Rule, date]]  # (team, rule, day of the event) -> messages

    def discard(self, message: WriteMessage, rule: Rule) -> None:
        _discard(self.outcomes, self.discarded, message, rule)

    def discard_stored_confirmations(self, refused: list[WriteMessage]) -> None:
        """``refused``: events whose order id the store already held (the statement
        inserting events with an order id wrote none of them): duplicate confirmations."""
        for message in refused:
            self.discard(message, Rule.DUPLICATE_ORDER)


def _discard(
    outcomes: dict[str, Outcome],
    counts: Counter[tuple[int, Rule, date]],
    message: WriteMessage,
    rule: Rule,
) -> None:
    outcomes[message.id] = Outcome.discarded(rule)
    counts[(message.team_id, rule, message.occurred_at.date())] += 1


class _Planner:
    def __init__(
        self,
        owners: dict[IdentifierKey, int],
        customers: dict[int, CustomerState],
        email_open_window: timedelta,
    ) -> None:
        self.owners = dict(owners)
        self.customers = dict(customers)
        self.window = email_open_window
        self.merged_into: dict[int, int] = {}
        self.deleted: set[int] = set()
        self.new_refs = itertools.count(-1, -1)
        self.new_identifiers: dict[IdentifierKey, int] = {}
        self.merges: list[Merge] = []
        self.events: list[PlannedEvent] = []
        self.outcomes: dict[str, Outcome] = {}
        self.discarded: Counter[tuple[int, Rule, date]] = Counter()
        self.orders_seen: set[tuple[int, str]] = set()
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

    def delete(self, message: WriteMessage) -> None:
        keys = [(message.team_id, kind, value) for kind, value in message.identifiers.items()]
        for ref in {r for r in (self.owner(k) for k in keys) if r is not None}:
            self.deleted.add(ref)
            # Everything that resolves to the erased customer is forgotten.
            for key in [k for k in self.owners if self.owner(k) == ref]:
                del self.owners[key]
                self.new_identifiers.pop(key, None)

    def resolve(self, message: WriteMessage) -> CustomerState | None:
        """The customer a write applies to, creating and merging as the policy says."""
        team = message.team_id
        named = message.identifiers.items()
        if len(named) == 1:
            # The common case: one identifier, already held. Nothing to attach or merge.
            ref = self.owner((team, *named[0]))
            if ref is not None:
                customer = self.customers[ref]
                if message.occurred_at < customer.first_seen_at:
                    customer.first_seen_at = message.occurred_at
                    customer.changed = True
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
            ref = next(self.new_refs)
            group = [
                CustomerState(
                    ref=ref,
                    team_id=team,
                    attributes={},
                    versions={},
                    first_seen_at=message.occurred_at,
                    last_updated_at=message.occurred_at,
                    changed=True,
                )
            ]
            self.customers[ref] = group[0]
        survivor = min(group, key=CustomerState.age_key)
        for other in group:
            if other is survivor:
                continue
            survivor.absorb(other)
            self.merged_into[other.ref] = survivor.ref
            if not other.is_new:
                self.merges.append(Merge(other.ref, survivor.ref, team, message.id))
        for kind, value, holder in held:
            if holder is None:
                key = (team, kind, value)
                self.owners[key] = survivor.ref
                self.new_identifiers[key] = survivor.ref
                if kind == "external_id":
                    survivor.external_ids.add(value)
        if message.occurred_at < survivor.first_seen_at:
            survivor.first_seen_at = message.occurred_at
            survivor.changed = True
        # An event alone leaves the customer row as it is: last_updated_at is the time
        # of the newest attribute change, and not rewriting the row keeps event batches cheap.
        return survivor

    def write(self, message: WriteMessage) -> None:
        event = message.event
        if event is not None and rules.is_bot(message.user_agent):
            self.discard(message, Rule.BOT)
            return
        customer = self.resolve(message)
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
            order = (message.team_id, event.order_id)
            if order in self.orders_seen:
                self.discard(message, Rule.DUPLICATE_ORDER)
                return
            self.orders_seen.add(order)
        if event.kind == "email_open":
            if any(abs(message.occurred_at - t) < self.window for t in customer.email_opens):
                self.discard(message, Rule.EMAIL_OPEN_WINDOW)
                return
            customer.email_opens.append(message.occurred_at)
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

    def join_group(self, message: WriteMessage, customer: CustomerState) -> None:
        group = message.group
        assert group is not None
        at = message.occurred_at
        key = (message.team_id, group.group_id)
        state = self.groups.get(key)
        if state is None:
            state = self.groups[key] = GroupState({}, {}, at, at)
        state.set_traits(group.traits, rules.version(at, message.id), at)
        member = (message.team_id, group.group_id, customer.ref)
        self.memberships[member] = min(at, self.memberships.get(member, at))

    # -- result ------------------------------------------------------------------

    def result(self) -> Plan:
        live = {ref: c for ref, c in self.customers.items() if ref not in self.merged_into}
        final_deleted = {self.final(ref) for ref in self.deleted}
        deleted = [
            ref
            for ref in self.customers
            if ref > 0 and (ref in final_deleted or self.final(ref) in final_deleted)
        ]
        merges = [m for m in self.merges if self.final(m.survivor_ref) not in final_deleted]
        merges = [
            Merge(m.merged_id, self.final(m.survivor_ref), m.team_id, m.message_id) for m in merges
        ]
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
            merges=merges,
            identifiers=identifiers,
            events=events,
            groups=self.groups,
            memberships=memberships,
            outcomes=self.outcomes,
            discarded=self.discarded,
        )


def plan_batch(
    messages: list[WriteMessage],
    owners: dict[IdentifierKey, int],
    customers: dict[int, CustomerState],
    email_open_window: timedelta,
) -> Plan:
    """What to write for ``messages``, applied in order, given the current owners.

    ``owners`` maps every identifier the batch names to its customer (when held);
    ``customers`` has the state of those customers, locked by the caller.
    """
    planner = _Planner(owners, customers, email_open_window)
    for message in messages:
        if message.op == "delete_customer":
            planner.delete(message)
        else:
            planner.write(message)
    return planner.result()
