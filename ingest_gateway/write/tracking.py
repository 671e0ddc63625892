"""Tracking plans at the gateway: every write checked against its team's active plan.

``TrackingPlans`` keeps, per process, each team's active plan compiled once per
version (``schemas.tracking_plans.CompiledPlan``); it reads which version each team
has active every ``TRACKING_PLAN_REFRESH_S`` (``tracking_plan_active``) and fetches
and compiles a version only when it changed, so a new plan takes effect on every
gateway process within that time, and a team without a plan costs a dictionary
lookup per request.

``enforce`` is the one call the write path makes (``accept``, before the quota): each
message of a team with a plan is checked; one that breaks it goes on carrying its
verdict (``schemas.violations.Tracking``), without its offending properties in
``omit`` mode. Blocked messages are published too: the consumers keep them in
``tracking_violations`` instead of the store, in the batch's transaction, so a
violation is as durable as a write. The client is answered as for any write, with
``X-Tracking-Violations`` counting the messages that broke the plan.

``?validate=true`` makes the request a dry run: nothing is published, and the answer
(``web.responses.DryRun``, rendered by the error layer) lists each message's verdict.

When PostgreSQL does not answer, the last plans read stay in force.

Imports asyncpg, ``web.responses.DryRun``, ``runtime`` and ``schemas``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from ingest_gateway.web.responses import DryRun
from runtime.settings import Settings
from runtime.tasks import cancel_and_wait, every
from schemas.messages import WriteMessage
from schemas.tracking_plans import CompiledPlan, parse_plan

log = logging.getLogger(__name__)

HEADER = "X-Tracking-Violations"


class TrackingPlans:
    """The active tracking plans of one gateway process (see the module's docstring)."""

    def __init__(self, settings: Settings, db: asyncpg.Pool | None) -> None:
        self._settings = settings
        self._db = db
        self._active: dict[int, CompiledPlan] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def active(self, team_id: int) -> CompiledPlan | None:
        return self._active.get(team_id)

    def hold(self, team_id: int, plan: CompiledPlan) -> None:
        """Make ``plan`` the team's until the next refresh (the bench, without PostgreSQL)."""
        self._active = self._active | {team_id: plan}

    def enforce(
        self, messages: list[WriteMessage], dry_run: bool = False
    ) -> tuple[list[WriteMessage], dict[str, int]]:
        """The messages as they go on, and how many broke the plan by the action it
        took (none: empty); ``dry_run`` (``?validate=true``): raises ``DryRun`` with the
        verdicts instead."""
        plan = self._active.get(messages[0].team_id)
        if plan is None:
            if dry_run:
                raise DryRun(_verdicts(None, messages))
            return messages, {}
        checked = [plan.check(m) for m in messages]
        if dry_run:
            raise DryRun(_verdicts(plan, checked))
        broken: dict[str, int] = {}
        for message in checked:
            if message.tracking is not None:
                action = message.tracking.action
                broken[action] = broken.get(action, 0) + 1
        return checked, broken

    # -- the periodic refresh -------------------------------------------------------

    def start(self) -> None:
        self._refreshing = asyncio.create_task(
            every(self._settings.tracking_plan_refresh_s, self.refresh, "the tracking plans")
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._refreshing)

    async def refresh(self) -> None:
        """Read each team's active version; fetch and compile the versions not held."""
        if self._db is None:
            return
        rows = await self._db.fetch(
            "SELECT team_id, version FROM tracking_plan_active WHERE version IS NOT NULL"
        )
        active: dict[int, CompiledPlan] = {}
        for row in rows:
            team_id, version = row["team_id"], row["version"]
            held = self._active.get(team_id)
            if held is not None and held.version == version:
                active[team_id] = held
                continue
            document = await self._db.fetchval(
                "SELECT plan::text FROM tracking_plans WHERE team_id = $1 AND version = $2",
                team_id,
                version,
            )
            try:
                active[team_id] = CompiledPlan(version, parse_plan(document))
            except ValueError:
                # Checked at upload; a plan that no longer compiles keeps the one held.
                log.exception("team %s: plan version %s does not compile", team_id, version)
                if held is not None:
                    active[team_id] = held
        self._active = active


def _verdicts(plan: CompiledPlan | None, messages: list[WriteMessage]) -> dict[str, Any]:
    verdicts: list[dict[str, Any]] = []
    for message in messages:
        tracking = message.tracking
        verdict: dict[str, Any] = {
            "messageId": message.id,
            "event": message.event.name if message.event else message.op,
            "action": tracking.action if tracking else "store",
            "violations": [
                {"pointer": f.pointer, "rule": f.rule, "message": f.message}
                for f in (tracking.failures if tracking else ())
            ],
        }
        verdicts.append(verdict)
    body = {
        "dryRun": True,
        "planVersion": plan.version if plan else None,
        "valid": all(not v["violations"] for v in verdicts),
        "messages": verdicts,
    }
    return body
