"""Accepting canonical writes: refuse blocked identifiers, publish, optionally wait, answer.

The one path every surface's writes take once built (``build.new_write``):
``accept`` (2xx only after the sink, Kafka, acknowledged them; with ``Prefer:
return=representation`` or ``?wait=true``, then also after the consumers applied
them, bounded by ``WAIT_TIMEOUT_S``), and the answer (``Accepted.respond``: 202 with
the message id when the wait ran out).

Every write passes here, so this is also where a team's blocked identifier values
are enforced before anything is published (``blocked_values.unblocked``), then its
tracking plan (``tracking``: issue #22; ``?validate=true`` answers there, a dry run),
its runtime controls (``controls``: dropped or dead-lettered writes end here), its
quota (``quotas``) and the lane each write takes (``lanes``).

Imports the services (``web.deps``), the answer type, the query flags
(``web.query``), the gateway's ``metrics``, ``blocked_values``, ``tracking``,
``controls``, the read model's wait (``read_model.outcomes``), the sink's interface,
``runtime.logs`` and ``schemas``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from starlette.requests import Request

from ingest_gateway import metrics
from ingest_gateway.read_model.outcomes import wait_for_outcomes
from ingest_gateway.web import deps
from ingest_gateway.web.query import flag
from ingest_gateway.web.responses import JSON
from ingest_gateway.write import tracking
from ingest_gateway.write.blocked_values import unblocked
from ingest_gateway.write.controls import NONE, Control
from ingest_gateway.write.sink import Sink
from runtime import logs
from schemas.messages import WriteMessage
from schemas.outcomes import Outcome


class Accepted(msgspec.Struct, frozen=True):
    """What became of a request's writes. (A Struct: one per write request, made in C.)"""

    message_ids: list[str]
    # Outcome per message id when the client asked to wait and the consumers finished.
    outcomes: dict[str, Outcome] | None
    waited: bool
    violations: int = 0  # messages that broke their team's tracking plan

    @property
    def timed_out(self) -> bool:
        return self.waited and self.outcomes is None

    @property
    def headers(self) -> dict[str, str]:
        """``X-Message-Id``: the accepted writes' ids (for at most 20 of them)."""
        ids = self.message_ids
        headers = {"X-Message-Id": ",".join(ids)} if ids and len(ids) <= 20 else {}
        if self.violations:
            headers[tracking.HEADER] = str(self.violations)
        return headers

    def outcome(self, message_id: str) -> str:
        """What the consumers made of a write the client waited for ("" if unknown)."""
        return (self.outcomes or {}).get(message_id, "")

    def respond(self, body: Any, status_code: int = 200) -> JSON:
        """The answer to an accepted write: ``202`` instead when the wait ran out."""
        status = 202 if self.timed_out else status_code
        return JSON(body, status_code=status, headers=self.headers)


async def accept(request: Request, messages: list[WriteMessage], refused: int = 0) -> Accepted:
    """Publish (2xx only after Kafka acknowledged), then wait if the client asked to;
    ``ApiError(400)`` when a message names a value its team blocked, or ``wait`` is
    no boolean. ``refused``: the items of the request its surface refused (counted in
    the metrics)."""
    services = deps.services(request)
    # Both query flags first, whatever the body holds: the OpenAPI types them as
    # booleans, so ?validate=null is a 400 even on a batch whose every item was
    # refused (the fuzz test's negative check holds the gateway to that).
    wait, dry_run = wants_wait(request), flag(request, "validate")
    violations: dict[str, int] = {}
    acted = NONE
    if messages:
        messages = await unblocked(request, messages)
        request.scope[logs.MESSAGES_KEY] = messages  # named on the request's log lines
        messages, violations = services.plans.enforce(messages, dry_run)
        acted = await _publish(services, messages)
    metrics.written(request.scope, len(messages), refused, violations, acted)
    ids = [m.id for m in messages]
    broke = sum(violations.values())
    if not wait or not messages or acted & _HELD_BACK:
        return Accepted(ids, None, waited=False, violations=broke)
    found = await wait_for_outcomes(services.db, ids, services.settings.wait_timeout_s)
    return Accepted(ids, found, waited=True, violations=broke)


# The controls under which a team's writes never reach the consumers (nothing to wait for).
_DROPPED, _DEAD_LETTERED = frozenset({Control.DROP}), frozenset({Control.DEAD_LETTER})
_HELD_BACK = _DROPPED | _DEAD_LETTERED


async def _publish(services: deps.Services, messages: list[WriteMessage]) -> frozenset[Control]:
    """Publish one request's messages (all of one team) as the team's quota, controls
    and lanes say; the controls that acted on them."""
    team_id = messages[0].team_id
    controls = services.controls.of(team_id)
    # Most teams have no controls: an empty set is tested once, and the enum's members
    # are looked up only for a team that has some.
    if controls and Control.DROP in controls:
        return _DROPPED
    await services.quotas.take(team_id, len(messages))
    sink: Sink = services.publisher
    if controls:
        if Control.DEAD_LETTER in controls:
            await sink.publish_dead_letters(messages, DEAD_LETTER_REASON)
            return _DEAD_LETTERED
        if Control.SKIP_IDENTITY in controls:
            messages = [msgspec.structs.replace(m, skip_identity=True) for m in messages]
    main, overflow = services.lanes.route(messages, bool(controls) and Control.OVERFLOW in controls)
    if not overflow:
        await sink.publish(main)
    elif not main:
        await sink.publish(overflow, services.settings.writes_overflow_topic)
    else:
        await asyncio.gather(
            sink.publish(main), sink.publish(overflow, services.settings.writes_overflow_topic)
        )
    return controls  # (skip_identity, overflow: drop and dead_letter returned above)


# The reason a dead letter of a team under the ``dead_letter`` control carries.
DEAD_LETTER_REASON = "the team's dead_letter control (ingest-admin control)"


# -- the optional wait for the consumers ---------------------------------------


def wants_wait(request: Request) -> bool:
    """Whether the client asked to wait (``Prefer: return=representation`` or
    ``?wait=true``); ``ApiError(400)`` when ``wait`` is no boolean (``?wait=null``)."""
    if flag(request, "wait"):
        return True
    prefer = request.headers.get("prefer")
    return bool(prefer and "return=representation" in prefer.lower())
