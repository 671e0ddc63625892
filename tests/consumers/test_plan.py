"""The identity and event policy of ``consumers.plan``, without I/O, and the pure parts
of ``consumers.statements`` that read for a plan and write it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from consumers.plan import CustomerState, Plan, StoredEvent, first_identifier, plan_batch
from consumers.statements import (
    customers_to_compare,
    email_open_span,
    external_ids_named,
    identifier_keys,
    identifiers_to_attach,
)
from schemas.messages import (
    EventData,
    GroupData,
    Identifiers,
    Operation,
    WriteMessage,
    client_message_id,
)
from schemas.outcomes import Outcome, Rule
from tests.consumers.workload import message

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=20)
TEAM = 1


def msg(
    op: Operation = "upsert_customer",
    at: int = 0,
    event: EventData | None = None,
    create: bool = True,
    agent: str | None = None,
    attrs: dict[str, Any] | None = None,
    **ids: str,
) -> WriteMessage:
    return message(
        TEAM,
        op,
        Identifiers(**ids),
        T0 + timedelta(minutes=at),
        attributes=attrs or {},
        event=event,
        create_if_missing=create,
        user_agent=agent,
    )


def customer(ref: int, at: int = 0, external_id: str | None = None, **attrs: Any) -> CustomerState:
    return CustomerState(
        ref=ref,
        team_id=TEAM,
        attributes=dict(attrs),
        versions={k: f"{at:020d}" for k in attrs},
        first_seen_at=T0 + timedelta(minutes=at),
        last_updated_at=T0 + timedelta(minutes=at),
        external_ids={external_id} if external_id else set(),
    )


def plan(
    messages: list[WriteMessage],
    owners: dict[tuple[str, str], int] | None = None,
    customers: list[CustomerState] | None = None,
) -> Plan:
    return plan_batch(
        messages,
        {(TEAM, kind, value): ref for (kind, value), ref in (owners or {}).items()},
        {c.ref: c for c in customers or []},
        WINDOW,
    )


def test_unknown_identifiers_create_one_customer_with_all_of_them() -> None:
    p = plan([msg(email="a@x.io", phone="+14155550100", attrs={"name": "A"})])
    assert len(p.created) == 1 and p.created[0].attributes == {"name": "A"}
    assert {(k, v) for _, k, v, _ in p.identifiers} == {
        ("email", "a@x.io"),
        ("phone", "+14155550100"),
    }


def test_a_write_naming_two_customers_merges_them_into_the_oldest() -> None:
    old, new = customer(10, at=0, name="Old", plan="a"), customer(20, at=5, plan="b")
    p = plan(
        [msg(email="a@x.io", phone="+14155550100", at=10)],
        owners={("email", "a@x.io"): 20, ("phone", "+14155550100"): 10},
        customers=[old, new],
    )
    assert [(m.merged_id, m.survivor_ref) for m in p.merges] == [(20, 10)]
    (survivor,) = p.updated
    assert survivor.ref == 10
    # Per attribute, the newest event time wins: "plan" was set later on the newer one.
    assert survivor.attributes == {"name": "Old", "plan": "b"}


def test_customers_with_different_external_ids_are_never_merged() -> None:
    a, b = customer(1, external_id="ext-a"), customer(2, external_id="ext-b")
    p = plan(
        [msg(email="b@x.io", external_id="ext-a", attrs={"seen": True})],
        owners={("email", "b@x.io"): 2, ("external_id", "ext-a"): 1},
        customers=[a, b],
    )
    assert p.merges == []
    assert [c.ref for c in p.updated] == [1]  # the write goes to the external id's customer
    assert p.identifiers == []  # b@x.io stays with customer 2


def test_a_new_external_id_for_a_customer_that_has_one_starts_a_new_customer() -> None:
    a = customer(1, external_id="ext-a")
    p = plan(
        [msg(email="a@x.io", external_id="ext-new")], owners={("email", "a@x.io"): 1}, customers=[a]
    )
    assert len(p.created) == 1 and p.merges == []
    assert [(k, v) for _, k, v, _ in p.identifiers] == [("external_id", "ext-new")]


def test_older_attribute_update_does_not_overwrite_newer_value() -> None:
    p = plan(
        [
            msg(email="a@x.io", at=10, attrs={"plan": "new"}),
            msg(email="a@x.io", at=5, attrs={"plan": "old", "name": "N"}),
        ]
    )
    assert p.created[0].attributes == {"plan": "new", "name": "N"}


def test_delete_is_ordered_with_writes_before_and_after() -> None:
    existing = customer(7, name="Gone")
    p = plan(
        [
            msg(email="a@x.io", event=EventData(name="before")),
            msg("delete_customer", email="a@x.io"),
            msg(email="a@x.io", at=1, attrs={"fresh": True}),
        ],
        owners={("email", "a@x.io"): 7},
        customers=[existing],
    )
    assert p.deleted == [7]
    assert [c.attributes for c in p.created] == [{"fresh": True}]
    assert p.events == []  # the event before the delete was erased with the customer


def test_write_requiring_an_existing_customer_is_discarded_when_unknown() -> None:
    m = msg(email="nobody@x.io", create=False, event=EventData(name="update", kind="update"))
    p = plan([m])
    assert p.created == [] and p.outcomes == {m.id: "discarded:unknown_customer"}


def test_unknown_customer_id_is_never_created() -> None:
    m = msg(customer_id="999", event=EventData(name="x"))
    p = plan([m])
    assert p.created == [] and p.outcomes[m.id] == "discarded:unknown_customer"


def test_confirmations_are_kept_once_per_order_the_earliest_accepted() -> None:
    first, again, third = (
        msg(
            email="a@x.io",
            event=EventData(name="confirmation", kind="confirmation", order_id="o-1"),
        )
        for _ in range(3)
    )
    for order in ([first, again, third], [third, again, first], [again, first, third]):
        p = plan(order)
        assert [e.message.id for e in p.events] == [first.id]
        assert p.outcomes == {
            again.id: "discarded:duplicate_confirmation",
            third.id: "discarded:duplicate_confirmation",
        }


def email_open(at: int, message_id: str | None = None) -> WriteMessage:
    return message(
        TEAM,
        "track_event",
        Identifiers(email="a@x.io"),
        T0 + timedelta(minutes=at),
        message_id,
        event=EventData(name="email_open", kind="email_open"),
    )


def test_email_opens_at_most_one_per_twenty_minute_window_of_event_time() -> None:
    # Fixed windows from the epoch (T0 starts one): [0, 20) keeps 0, [20, 40) keeps 21.
    opens = [email_open(at) for at in (0, 5, 19, 21, 30)]
    p = plan(opens)
    assert [e.message.occurred_at for e in p.events] == [T0, T0 + timedelta(minutes=21)]
    assert sum(p.discarded.values()) == 3


def test_the_earliest_open_of_a_window_is_kept_whatever_the_apply_order() -> None:
    opens = [email_open(at) for at in (0, 5, 19, 21, 30, 39, 41)]
    expected = {opens[0].id, opens[3].id, opens[6].id}
    for order in (opens, opens[::-1], opens[3:] + opens[:3]):
        p = plan(order)
        assert {e.message.id for e in p.events} == expected
        assert set(p.outcomes) == {m.id for m in opens} - expected
        assert p.outcomes[opens[1].id] == Outcome.DISCARDED_EMAIL_OPEN_WINDOW


def test_a_later_applied_earlier_open_replaces_the_stored_one_of_its_window() -> None:
    stored = customer(7)
    stored.email_opens = [(T0 + timedelta(minutes=10), "01890000-0000-7000-8000-000000000001")]
    earlier, later = email_open(3), email_open(15)
    p = plan([later, earlier], owners={("email", "a@x.io"): 7}, customers=[stored])
    assert [e.message.id for e in p.events] == [earlier.id]
    assert [(r.id, r.occurred_at) for r in p.removed_opens] == [
        ("01890000-0000-7000-8000-000000000001", T0 + timedelta(minutes=10))
    ]
    assert p.outcomes == {
        later.id: Outcome.DISCARDED_EMAIL_OPEN_WINDOW,
        "01890000-0000-7000-8000-000000000001": Outcome.DISCARDED_EMAIL_OPEN_WINDOW,
    }
    assert p.discarded == {(TEAM, Rule.EMAIL_OPEN_WINDOW, T0.date()): 2}
    # An open of the same time with a larger message id leaves the stored one.
    tie = email_open(10)
    stored.email_opens = [(T0 + timedelta(minutes=10), "01890000-0000-7000-8000-000000000001")]
    p = plan([tie], owners={("email", "a@x.io"): 7}, customers=[stored])
    assert p.events == [] and p.removed_opens == []


def test_bot_events_are_not_stored() -> None:
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    m = msg(email="a@x.io", event=EventData(name="view"), agent=bot)
    p = plan([m])
    assert p.events == [] and p.outcomes == {m.id: "discarded:bot"}


def test_the_later_accepted_version_of_a_client_event_is_written_whatever_its_time() -> None:
    # Document 004: a write with an existing id overrides the stored event. Accepted
    # later means a later message id (UUIDv7), even with an older event time.
    first = msg(
        email="a@x.io", at=10, event=EventData(name="t", client_event_id="e1", body={"v": 1})
    )
    resend = msg(
        email="a@x.io", at=1, event=EventData(name="t", client_event_id="e1", body={"v": 2})
    )
    assert first.id < resend.id
    assert [e.message.id for e in plan([first, resend]).events] == [resend.id]
    # The order the consumer meets them in does not matter: the later id wins.
    assert [e.message.id for e in plan([resend, first]).events] == [resend.id]


def test_merge_chain_within_one_batch_ends_in_one_customer() -> None:
    p = plan(
        [
            msg(email="a@x.io", at=0),
            msg(phone="+14155550100", at=1),
            msg(external_id="x1", at=2),
            msg(email="a@x.io", phone="+14155550100", at=3),
            msg(phone="+14155550100", external_id="x1", at=4),
        ]
    )
    assert len(p.created) == 1
    assert {k for _, k, _, _ in p.identifiers} == {"email", "phone", "external_id"}
    assert len({ref for *_, ref in p.identifiers}) == 1


# -- what is read for a plan, and added to it when written (consumers.statements) --


def test_the_owners_to_lock_are_every_identifier_named_once_in_order() -> None:
    messages = [msg(phone="+14155550100", email="b@x.io"), msg(email="a@x.io"), msg(email="b@x.io")]
    assert identifier_keys(messages) == [
        (TEAM, "email", "a@x.io"),
        (TEAM, "email", "b@x.io"),
        (TEAM, "phone", "+14155550100"),
    ]


def test_only_customers_a_write_names_beside_another_identifier_are_compared() -> None:
    owners = {(TEAM, "email", "a@x.io"): 1, (TEAM, "phone", "+14155550100"): 2}
    owners[(TEAM, "email", "alone@x.io")] = 3
    messages = [msg(email="a@x.io", phone="+14155550100"), msg(email="alone@x.io")]
    assert customers_to_compare(messages, owners) == {1, 2}
    assert customers_to_compare([msg(email="alone@x.io")], owners) == set()


def test_an_external_id_the_batch_names_is_known_from_its_owner() -> None:
    owners = {
        (TEAM, "external_id", "u-1"): 1,
        (TEAM, "anonymous_id", "d-1"): 1,
        (TEAM, "email", "b@x.io"): 2,
        (TEAM, "external_id", "u-3"): 3,
    }
    # Customer 2 may hold an external id the batch does not name: it must be read.
    assert external_ids_named(owners, {1, 2}) == {1: "u-1"}
    assert external_ids_named(owners, set()) == {}


def test_stored_email_opens_are_read_in_the_windows_of_the_batchs_opens() -> None:
    assert email_open_span([msg(email="a@x.io", event=EventData(name="view"))], WINDOW) is None
    # T0 (midnight) starts a window: the windows are [0, 20) and [20, 40) minutes.
    span = email_open_span([email_open(30), email_open(5)], WINDOW)
    assert span == (T0, T0 + timedelta(minutes=40))
    assert email_open_span([email_open(5)], timedelta(0)) is None  # 0 keeps every open


def test_a_new_customer_is_known_by_its_own_id_once_it_has_one() -> None:
    existing = customer(7)
    p = plan(
        [msg(email="a@x.io"), msg(email="b@x.io", phone="+14155550100")],
        owners={("email", "b@x.io"): 7},
        customers=[existing],
    )
    (new,) = p.created
    assert sorted(identifiers_to_attach(p, {new.ref: 41})) == [
        (TEAM, "customer_id", "41", 41),
        (TEAM, "email", "a@x.io", 41),
        (TEAM, "phone", "+14155550100", 7),
    ]


def test_a_confirmation_whose_order_the_store_holds_is_a_discarded_duplicate() -> None:
    stored = msg(email="a@x.io", event=EventData(name="c", kind="confirmation", order_id="o-9"))
    p = plan([stored])
    assert p.outcomes == {}
    p.discard_stored_confirmations([stored])
    assert p.outcomes == {stored.id: Outcome.DISCARDED_DUPLICATE_ORDER}
    assert p.discarded == {(TEAM, Rule.DUPLICATE_ORDER, T0.date()): 1}


def test_a_stored_confirmation_an_earlier_copy_replaced_is_a_discarded_duplicate() -> None:
    p = plan([])
    replaced = StoredEvent(TEAM, "01890000-0000-7000-8000-000000000009", T0)
    p.discard_stored_confirmations([], [replaced])
    assert p.outcomes == {replaced.id: Outcome.DISCARDED_DUPLICATE_ORDER}
    assert p.discarded == {(TEAM, Rule.DUPLICATE_ORDER, T0.date()): 1}


# -- deletes and the writes around them, in any order (lanes) ------------------------


def test_a_delete_tombstones_every_identifier_of_the_erased_customer() -> None:
    existing = customer(7)
    delete = msg("delete_customer", email="a@x.io", phone="+14155550199")
    p = plan(
        [msg(email="a@x.io", external_id="u-1"), delete],
        owners={("email", "a@x.io"): 7},
        customers=[existing],
    )
    assert p.deleted == [7] and p.erasures == {7: delete.id}
    # Named by the delete (held or not), or attached in the batch to the erased customer;
    # the stored ones the batch does not name are added by statements.delete_customers.
    assert p.tombstones == {
        (TEAM, "email", "a@x.io"): delete.id,
        (TEAM, "phone", "+14155550199"): delete.id,
        (TEAM, "external_id", "u-1"): delete.id,
    }
    assert p.identifiers == []


def test_a_write_accepted_before_a_delete_and_applied_after_it_is_discarded() -> None:
    before = msg(email="a@x.io", attrs={"plan": "old"})
    both = msg(email="b@x.io", phone="+14155550100")
    delete = msg("delete_customer", email="a@x.io")
    after = msg(email="a@x.io", at=1, attrs={"plan": "new"})
    # In one batch, in the other order than accepted:
    p = plan([delete, before, after])
    assert p.outcomes == {before.id: Outcome.DISCARDED_ERASED}
    assert p.discarded == {(TEAM, Rule.ERASED, T0.date()): 1}
    assert [c.attributes for c in p.created] == [{"plan": "new"}]
    # In a later batch, against the stored tombstone:
    tombstones = {(TEAM, "email", "a@x.io"): delete.id}
    p = plan_batch([before], {}, {}, WINDOW, tombstones)
    assert p.created == [] and p.outcomes == {before.id: Outcome.DISCARDED_ERASED}
    # Naming the tombstoned identifier beside another is enough.
    p = plan_batch([both], {}, {}, WINDOW, {(TEAM, "phone", "+14155550100"): delete.id})
    assert p.created == [] and p.outcomes == {both.id: Outcome.DISCARDED_ERASED}
    # Accepted after the delete: starts afresh.
    p = plan_batch([after], {}, {}, WINDOW, tombstones)
    assert [c.attributes for c in p.created] == [{"plan": "new"}] and p.outcomes == {}


def test_a_delete_older_than_a_tombstone_erases_nothing_again() -> None:
    first = msg("delete_customer", email="a@x.io")
    second = msg("delete_customer", email="a@x.io")
    fresh = customer(8)  # built by writes accepted after the second delete
    p = plan_batch(
        [first],
        {(TEAM, "email", "a@x.io"): 8},
        {8: fresh},
        WINDOW,
        {(TEAM, "email", "a@x.io"): second.id},
    )
    assert p.deleted == [] and p.tombstones == {}
    assert p.outcomes == {first.id: Outcome.DISCARDED_ERASED}


def test_a_delete_keeps_the_latest_tombstone() -> None:
    first = msg("delete_customer", email="a@x.io")
    second = msg("delete_customer", email="a@x.io")
    p = plan([second, first])
    assert p.tombstones == {(TEAM, "email", "a@x.io"): second.id}
    assert p.outcomes == {first.id: Outcome.DISCARDED_ERASED}


# -- skip identity -----------------------------------------------------------------


def skipping(**ids: str) -> WriteMessage:
    return message(
        TEAM, "upsert_customer", Identifiers(**ids), T0, attributes={"x": 1}, skip_identity=True
    )


def test_skip_identity_applies_to_the_customer_of_the_first_identifier_without_merging() -> None:
    a, b = customer(1), customer(2)
    m = skipping(email="a@x.io", phone="+14155550100", anonymous_id="d-1")
    p = plan([m], owners={("email", "a@x.io"): 1, ("phone", "+14155550100"): 2}, customers=[a, b])
    assert p.merges == [] and p.identifiers == [] and p.created == []
    assert [(c.ref, c.attributes) for c in p.updated] == [(1, {"x": 1})]


def test_skip_identity_follows_the_key_precedence_not_the_merge_rules() -> None:
    # email > external_id > phone > customer_id > anonymous_id (schemas.topics).
    owner_of_phone = customer(2)
    m = skipping(phone="+14155550100", external_id="u-1")
    p = plan([m], owners={("phone", "+14155550100"): 2}, customers=[owner_of_phone])
    # The external id comes first: nobody holds it, so a customer holding only it.
    (new,) = p.created
    assert new.external_ids == {"u-1"} and p.updated == []
    assert [(k, v) for _, k, v, _ in p.identifiers] == [("external_id", "u-1")]
    assert first_identifier(m) == (TEAM, "external_id", "u-1")


def test_skip_identity_creates_nothing_where_the_api_requires_a_customer() -> None:
    m = message(
        TEAM,
        "track_event",
        Identifiers(email="new@x.io"),
        T0,
        event=EventData(name="view"),
        create_if_missing=False,
        skip_identity=True,
    )
    assert plan([m]).outcomes == {m.id: Outcome.DISCARDED_UNKNOWN_CUSTOMER}
    by_id = skipping(customer_id="99", email=None)  # type: ignore[arg-type]
    assert plan([by_id]).outcomes == {by_id.id: Outcome.DISCARDED_UNKNOWN_CUSTOMER}


def test_skip_identity_locks_and_compares_only_the_first_identifier() -> None:
    m = skipping(email="a@x.io", phone="+14155550100")
    assert identifier_keys([m]) == [(TEAM, "email", "a@x.io")]
    owners = {(TEAM, "email", "a@x.io"): 1, (TEAM, "phone", "+14155550100"): 2}
    assert customers_to_compare([m], owners) == set()


def test_skip_identity_is_discarded_when_its_first_identifier_was_erased_after_it() -> None:
    m = skipping(email="a@x.io", phone="+14155550100")
    delete = msg("delete_customer", email="a@x.io")
    p = plan_batch([m], {}, {}, WINDOW, {(TEAM, "email", "a@x.io"): delete.id})
    assert p.outcomes == {m.id: Outcome.DISCARDED_ERASED}
    # A tombstone on another identifier it names does not concern it.
    p = plan_batch([m], {}, {}, WINDOW, {(TEAM, "phone", "+14155550100"): delete.id})
    assert len(p.created) == 1 and p.outcomes == {}


def test_a_later_copy_of_an_order_the_batch_erased_is_stored_afresh() -> None:
    confirmation = EventData(name="c", kind="confirmation", order_id="o-1")
    first = msg(email="a@x.io", event=confirmation)
    delete = msg("delete_customer", email="a@x.io")
    again = msg(email="a@x.io", at=1, event=confirmation)
    p = plan([first, delete, again])
    assert [e.message.id for e in p.events] == [again.id] and p.outcomes == {}
    version = EventData(name="t", client_event_id="e-1")
    v1, erase, v2 = (
        msg(email="b@x.io", event=version),
        msg("delete_customer", email="b@x.io"),
        msg(email="b@x.io", event=version),
    )
    p = plan([v1, erase, v2])
    assert [e.message.id for e in p.events] == [v2.id]


def test_an_erased_write_still_sets_its_groups_traits() -> None:
    # Applied before the delete it would have: the group is not the customer's.
    before = message(
        TEAM,
        "upsert_customer",
        Identifiers(email="a@x.io"),
        T0,
        group=GroupData(group_id="acme", traits={"seats": 5}),
    )
    delete = msg("delete_customer", email="a@x.io")
    p = plan([delete, before])
    assert p.outcomes == {before.id: Outcome.DISCARDED_ERASED}
    assert p.groups[(TEAM, "acme")].traits == {"seats": 5} and p.memberships == {}


def test_a_segment_write_is_ordered_against_a_delete_by_when_it_was_accepted() -> None:
    """A client-named id (Segment's messageId) is not a time: the tombstone is compared
    with the write's acceptance time instead, so a write accepted after the delete
    starts afresh and one accepted before is erased, whatever its id."""
    delete = msg("delete_customer", email="a@x.io")
    tombstones = {(TEAM, "email", "a@x.io"): delete.id}
    accepted = datetime.fromtimestamp(int(delete.id[:8] + delete.id[9:13], 16) / 1000, UTC)
    for client_id in ("a", "b", "c", "d", "e", "f"):
        write = msgspec.structs.replace(
            msg(email="a@x.io", attrs={"plan": "new"}), id=client_message_id(TEAM, client_id)
        )
        before = msgspec.structs.replace(write, received_at=accepted - timedelta(seconds=1))
        after = msgspec.structs.replace(write, received_at=accepted + timedelta(seconds=1))
        p = plan_batch([before], {}, {}, WINDOW, tombstones)
        assert p.created == [] and p.outcomes == {write.id: Outcome.DISCARDED_ERASED}
        p = plan_batch([after], {}, {}, WINDOW, tombstones)
        assert [c.attributes for c in p.created] == [{"plan": "new"}] and p.outcomes == {}
