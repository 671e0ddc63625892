"""The outcomes the consumers record (``schemas.outcomes``): the stored text is a contract."""

from __future__ import annotations

from schemas.outcomes import Outcome, Rule


def test_the_stored_text_of_every_outcome_is_as_the_gateway_and_the_ledger_read_it() -> None:
    assert {o.value for o in Outcome} == {
        "applied",
        "blocked",  # by the team's tracking plan (issue #22)
        "dead_letter",
        "discarded:bot",
        "discarded:duplicate_confirmation",
        "discarded:email_open_window",
        "discarded:unknown_customer",
        "discarded:erased",
    }
    assert {r.value for r in Rule} == {
        "bot",
        "duplicate_confirmation",
        "email_open_window",
        "unknown_customer",
        "erased",
    }


def test_a_discarded_outcome_names_its_rule() -> None:
    for rule in Rule:
        assert Outcome.discarded(rule) == f"discarded:{rule}"
        assert Outcome.discarded(rule).rule is rule
    assert Outcome.APPLIED.rule is None and Outcome.DEAD_LETTER.rule is None
