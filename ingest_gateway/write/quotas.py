"""Per-team quotas: events per second and a burst, the same for the team whatever
gateway process (or host) its requests reach.

The scheme: one token bucket per team in PostgreSQL (``team_quota_buckets``), which
every gateway process **leases** tokens from, ``QUOTA_LEASE_S`` of the team's rate at
a time, in one round trip (``lease_quota_tokens``, which refills the bucket, grants
and takes under the row's lock). A request takes its events from the process's
lease; only when the lease runs short does it go to PostgreSQL. So the team's total
is the bucket's, however a load balancer spreads its requests, off by at most the
leases the processes hold (given back after a second unused); and a team without a
quota costs a dictionary lookup.

Quotas are read from ``teams`` every ``QUOTA_REFRESH_S`` (``ingest-admin set-quota``
changes them), with the settings' default for teams without their own. Beyond the
quota ``take`` raises ``QuotaExceeded``, which the HTTP layer answers 429 with
``Retry-After`` and the ``RateLimit`` fields; nothing of the request is published.
When PostgreSQL does not answer, quotas are not enforced: refusing writes because the
quota's store is away would turn its outage into everyone's.

Imports asyncpg and ``runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

import asyncpg

from runtime.pg import is_unavailable
from runtime.settings import Settings
from runtime.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)

# A lease not used up within this long goes back to the team's bucket.
LEASE_KEPT_S = 1.0


@dataclass(frozen=True)
class Limit:
    """A team's quota: ``rate`` events per second, at most ``burst`` at once."""

    rate: float
    burst: float


class QuotaExceeded(Exception):
    """A request's events are beyond its team's quota."""

    def __init__(self, limit: Limit, remaining: float, retry_after_s: int) -> None:
        super().__init__(
            f"Too many requests: the team's quota is {limit.rate:g} events per second"
            f" (bursts of {limit.burst:g}); retry after {retry_after_s} s"
        )
        self.limit = limit
        self.remaining = remaining
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After``, and the ``RateLimit-Policy`` / ``RateLimit`` fields of the
        IETF draft (draft-ietf-httpapi-ratelimit-headers): the bucket's size and the
        seconds it takes to fill, what is left and when to come back."""
        window = max(1, math.ceil(self.limit.burst / self.limit.rate))
        return {
            "Retry-After": str(self.retry_after_s),
            "RateLimit-Policy": f'"team";q={int(self.limit.burst)};w={window}',
            "RateLimit": f'"team";r={int(self.remaining)};t={self.retry_after_s}',
        }


class BeyondBurst(Exception):
    """A request holds more events than its team's burst: no wait would let it pass."""

    def __init__(self, limit: Limit, events: int) -> None:
        super().__init__(
            f"The request holds {events} events, more than the team's quota lets through"
            f" at once ({limit.burst:g}); send them in smaller batches"
        )


class _Lease:
    __slots__ = ("since", "tokens")

    def __init__(self, tokens: float, since: float) -> None:
        self.tokens = tokens
        self.since = since


class Quotas:
    """The quotas of one gateway process (see the module's docstring)."""

    def __init__(self, settings: Settings, db: asyncpg.Pool | None) -> None:
        self._settings = settings
        self._db = db
        self._own: dict[int, Limit | None] = {}  # a team's own quota (None: no quota)
        self._default = _limit(settings.team_events_per_second, settings.team_burst)
        self._leases: dict[int, _Lease] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def limit(self, team_id: int) -> Limit | None:
        return self._own.get(team_id, self._default)

    async def take(self, team_id: int, events: int) -> None:
        """Count ``events`` against the team's quota; ``QuotaExceeded`` beyond it,
        ``BeyondBurst`` when no wait would let them through."""
        limit = self._own.get(team_id, self._default)
        if limit is None or not events:
            return
        if events > limit.burst:
            raise BeyondBurst(limit, events)
        lease = self._leases.get(team_id)
        if lease is not None and lease.tokens >= events:
            lease.tokens -= events
            return
        lock = self._locks.setdefault(team_id, asyncio.Lock())
        async with lock:  # one lease at a time per team and process
            lease = self._leases.get(team_id)
            if lease is not None and lease.tokens >= events:
                lease.tokens -= events
                return
            await self._lease(team_id, limit, events)

    async def _lease(self, team_id: int, limit: Limit, events: int) -> None:
        lease = self._leases.pop(team_id, None)
        held = lease.tokens if lease is not None else 0.0
        need = events - held
        want = need + limit.rate * self._settings.quota_lease_s
        try:
            row = await self._db_lease(team_id, limit, need, want, given_back=0.0)
        except Exception as exc:
            if not is_unavailable(exc) and not isinstance(exc, TimeoutError):
                raise
            log.warning("quotas not enforced: PostgreSQL unavailable (%s)", exc)
            return
        granted, remaining = row
        if granted < need:
            if held:  # not enough even with what this process holds: keep it for later
                self._leases[team_id] = _Lease(held, time.monotonic())
            deficit = need - remaining
            raise QuotaExceeded(limit, remaining + held, max(1, math.ceil(deficit / limit.rate)))
        self._leases[team_id] = _Lease(held + granted - events, time.monotonic())

    async def _db_lease(
        self, team_id: int, limit: Limit, need: float, want: float, given_back: float
    ) -> tuple[float, float]:
        if self._db is None:
            raise ConnectionError("no database")
        row = await self._db.fetchrow(
            "SELECT granted, remaining FROM lease_quota_tokens($1, $2, $3, $4, $5, $6)",
            team_id,
            limit.rate,
            limit.burst,
            need,
            want,
            given_back,
        )
        assert row is not None
        return float(row["granted"]), float(row["remaining"])

    # -- the quotas' refresh, and leases given back --------------------------------

    def start(self) -> None:
        self._refreshing = asyncio.create_task(
            every(self._settings.quota_refresh_s, self._refresh_and_give_back, "the quotas")
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._refreshing)
        with contextlib.suppress(Exception):
            await self._give_back(older_than_s=0.0)

    async def refresh(self) -> None:
        """Read every team's own quota (``ingest-admin set-quota``)."""
        if self._db is None:
            return
        rows = await self._db.fetch(
            "SELECT id, events_per_second, burst FROM teams"
            " WHERE events_per_second IS NOT NULL OR burst IS NOT NULL"
        )
        default = self._settings
        self._own = {
            row["id"]: _limit(
                default.team_events_per_second
                if row["events_per_second"] is None
                else row["events_per_second"],
                default.team_burst if row["burst"] is None else row["burst"],
            )
            for row in rows
        }

    async def _refresh_and_give_back(self) -> None:
        await self.refresh()
        await self._give_back(older_than_s=LEASE_KEPT_S)

    async def _give_back(self, older_than_s: float) -> None:
        """Return the unused tokens of leases older than ``older_than_s`` to their buckets."""
        now = time.monotonic()
        for team_id, lease in list(self._leases.items()):
            limit = self.limit(team_id)
            if now - lease.since < older_than_s or lease.tokens <= 0 or limit is None:
                continue
            async with self._locks.setdefault(team_id, asyncio.Lock()):
                taken = self._leases.pop(team_id, None)
                if taken is not None and taken.tokens > 0:
                    await self._db_lease(team_id, limit, 0.0, 0.0, given_back=taken.tokens)


def _limit(rate: float, burst: int) -> Limit | None:
    """The quota of a rate and a burst (0: one second of the rate); None for rate 0."""
    if rate <= 0:
        return None
    return Limit(rate, float(burst) if burst > 0 else max(rate, 1.0))
