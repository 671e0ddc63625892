"""Runtime controls per team: what the gateway does with a team's writes besides its quota.

An operator switches them with ``ingest-admin control TEAM ...`` (stored in
``teams.controls``); every gateway process reads them every ``QUOTA_REFRESH_S``, so
they take effect within seconds, without a restart:

* ``skip_identity``: each write applies to the customer its first identifier names,
  with no merge and no other identifier attached (``WriteMessage.skip_identity``;
  the consumers' ``plan``). For a team whose identify calls went wrong, or a flood
  whose merges would lock everyone's customers.
* ``overflow``: every write goes to the overflow lane (``lanes``).
* ``drop``: writes are answered as accepted and counted, but not published: for a
  team that must not be stored or billed while it is sorted out.
* ``dead_letter``: writes are published to the dead-letter topic, with the reason,
  instead of being applied; ``ingest-admin replay-dead-letters`` sends them back.

Throttling is the quota (``ingest-admin set-quota``, ``quotas``). Each change is
logged by every gateway process when it takes effect; the teams under each control
are a gauge and the writes each acted on a counter (``metrics``). When PostgreSQL
does not answer, the last controls read stay in force.

Imports asyncpg, the gateway's ``metrics`` and ``runtime``.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

import asyncpg

from ingest_gateway import metrics
from runtime.settings import Settings
from runtime.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)


class Control(StrEnum):
    SKIP_IDENTITY = "skip_identity"
    OVERFLOW = "overflow"
    DROP = "drop"
    DEAD_LETTER = "dead_letter"


NONE: frozenset[Control] = frozenset()


class TeamControls:
    """The controls of every team, as this gateway process last read them."""

    def __init__(self, settings: Settings, db: asyncpg.Pool | None) -> None:
        self._settings = settings
        self._db = db
        self._controls: dict[int, frozenset[Control]] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def of(self, team_id: int) -> frozenset[Control]:
        """The team's controls (most teams: none)."""
        return self._controls.get(team_id, NONE)

    async def refresh(self) -> None:
        """Read the controls; log each team's that changed."""
        if self._db is None:
            return
        rows = await self._db.fetch("SELECT id, controls FROM teams WHERE controls <> '{}'")
        read = {row["id"]: frozenset(Control(c) for c in row["controls"]) for row in rows}
        for team_id in sorted(read.keys() | self._controls.keys()):
            before, now = self.of(team_id), read.get(team_id, NONE)
            if before != now:
                log.info("team %d: controls now %s (were %s)", team_id, _named(now), _named(before))
        self._controls = read
        metrics.teams_controlled(
            {c.value: sum(c in controls for controls in read.values()) for c in Control}
        )

    def start(self) -> None:
        self._refreshing = asyncio.create_task(
            every(self._settings.quota_refresh_s, self.refresh, "the teams' controls")
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._refreshing)


def _named(controls: frozenset[Control]) -> str:
    return ", ".join(sorted(controls)) or "none"
