"""What became of a message: the outcomes the consumers record, and the rules that discard.

A consumer records one outcome per message id in ``processed_messages.outcome``;
the gateway reads it back to answer a client that waits. The stored text is the
contract, so each member's value is exactly what is stored and must never change:

- ``applied``: written (the column's default in migration 0001, so a claim by COPY
  records it without naming it);
- ``discarded:<rule>``: accepted, but a rule kept it out of the store; the rule
  alone is what ``discarded_events.rule`` counts per team and day;
- ``blocked``: its team's tracking plan kept it out of the store; it is in
  ``tracking_violations``, from where it may be replayed after a fix;
- ``dead_letter``: it could not be applied and went to the dead-letter topic; a
  message produced back from there (after a fix) may be applied after all.

A 004 answer of ``"superseded"`` is not an outcome: the message was applied, and
the gateway finds on reading the stored event that a later version is kept.

Members are ``str`` (``StrEnum``): they compare equal to the stored text and go
to PostgreSQL as it. Only the standard library is imported here.
"""

from __future__ import annotations

import enum

DISCARDED_PREFIX = "discarded:"


class Rule(enum.StrEnum):
    """Why a message was discarded; the text of ``discarded_events.rule``."""

    BOT = "bot"
    DUPLICATE_ORDER = "duplicate_confirmation"
    EMAIL_OPEN_WINDOW = "email_open_window"
    UNKNOWN_CUSTOMER = "unknown_customer"
    # Accepted before a delete of the customer it names, applied after it (the delete
    # travelled in another lane): applying it would re-create what was erased.
    ERASED = "erased"


class Outcome(enum.StrEnum):
    """What became of a message; the text of ``processed_messages.outcome``."""

    APPLIED = "applied"
    DEAD_LETTER = "dead_letter"
    # Kept out of the store by the team's tracking plan (tracking_violations has it).
    BLOCKED = "blocked"
    DISCARDED_BOT = DISCARDED_PREFIX + Rule.BOT
    DISCARDED_DUPLICATE_ORDER = DISCARDED_PREFIX + Rule.DUPLICATE_ORDER
    DISCARDED_EMAIL_OPEN_WINDOW = DISCARDED_PREFIX + Rule.EMAIL_OPEN_WINDOW
    DISCARDED_UNKNOWN_CUSTOMER = DISCARDED_PREFIX + Rule.UNKNOWN_CUSTOMER
    DISCARDED_ERASED = DISCARDED_PREFIX + Rule.ERASED

    @classmethod
    def discarded(cls, rule: Rule) -> Outcome:
        """The outcome of a message ``rule`` discarded."""
        return cls(DISCARDED_PREFIX + rule)

    @property
    def rule(self) -> Rule | None:
        """The rule that discarded the message, or None if it was not discarded."""
        if self.startswith(DISCARDED_PREFIX):
            return Rule(self.removeprefix(DISCARDED_PREFIX))
        return None
