"""What a message carries of its tracking-plan check: the wire part of issue #22.

The gateway checks every write against its team's active tracking plan
(``schemas.tracking_plans``) and, when the message broke the plan (or was replayed
from the violations table), attaches a ``Tracking`` to the ``WriteMessage``. The
consumers record it in ``tracking_violations`` in the batch's transaction and leave
a blocked message out of the store (``consumers.violations``).

Optional on the wire: a message without it broke nothing. Only msgspec is imported.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

# What happens to a message that breaks the plan: stored as sent, stored without the
# offending properties or traits, or kept out of the store (the violation only).
Action = Literal["allow", "omit", "block"]


class Failure(msgspec.Struct, frozen=True, omit_defaults=True):
    """One failed rule: where (a JSON pointer into the message as the client's event
    is shaped: ``/properties/total``, ``/traits/plan``, ``/event`` for an unplanned
    event), which rule (the JSON Schema keyword, or ``unplanned``) and why."""

    pointer: str
    rule: str
    message: str


class Tracking(msgspec.Struct, frozen=True, omit_defaults=True):
    """A message's check against its team's plan (see the module's docstring)."""

    plan_version: int | None
    action: Action = "allow"
    failures: tuple[Failure, ...] = ()
    # With action omit: what was taken out of the message, by part (``properties``,
    # ``traits``, ``attributes``), so that the violation keeps the message as sent.
    omitted: dict[str, dict[str, Any]] = {}
    # Set on a message sent again by ``ingest-admin replay-violations``: the id of
    # the first attempt and this attempt's number (1 for the first).
    replay_of: str | None = None
    attempt: int = 1
