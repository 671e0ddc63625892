"""Lanes: which topic each accepted write is published to, the main lane or the overflow.

The consumers apply a partition's writes in order, so one team that floods (a retry
loop gone wrong, a backfill, a bot storm) or one customer key sent far beyond any
person's rate (a customer id shared by a fleet of devices) would make every write
queued behind it wait. Such writes go to the overflow lane instead
(``WRITES_OVERFLOW_TOPIC``), which has consumers of its own, so the main lane keeps
the latency of everyone else:

* a team whose events through this gateway process pass
  ``LANE_TEAM_EVENTS_PER_SECOND`` within a second, while other teams write through
  it too: the rest of its writes that second, and all of them the next second (it
  leaves the lane once a whole second stays under the rate). A team alone on the
  process keeps the main lane: there is nobody to slow down;
* a customer key (``schemas.topics.partition_key``: the team and the write's first
  identifier) beyond ``LANE_CUSTOMER_EVENTS_PER_SECOND`` the same way;
* every write of a team under the ``overflow`` control (``controls``).

A delete goes to both lanes, whatever its rate
(``schemas.topics.with_deletes_in_every_lane`` says why).

Counting is per process, in windows of a second, two dictionary updates a write:
no coordination and no I/O on the request path. A lane decides only *when* a write
is applied, never *what* it does to the store: the consumers order what must be
ordered by event time or by the gateway's message id, not by arrival (docs/identity.md,
"Lanes and order"). Imports ``schemas``, the gateway's
``metrics`` and ``runtime.settings``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence

from ingest_gateway import metrics
from runtime.settings import Settings
from schemas.messages import WriteMessage
from schemas.topics import partition_key, with_deletes_in_every_lane

WINDOW_S = 1.0


class _Rate:
    """Events per key in the current window, and the keys over the limit in the last."""

    __slots__ = ("counts", "hot", "keys_before", "limit")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.counts: dict[Hashable, int] = {}
        self.hot: set[Hashable] = set()  # over the limit in the last window
        self.keys_before = 0  # keys counted in the last window

    def over(self, key: Hashable, events: int) -> bool:
        """Count ``events`` of ``key``; whether they go beyond its rate."""
        count = self.counts.get(key, 0) + events
        self.counts[key] = count
        return count > self.limit or key in self.hot

    def roll(self, last_window_empty: bool) -> None:
        if last_window_empty:
            self.hot, self.keys_before = set(), 0
        else:
            self.hot = {key for key, count in self.counts.items() if count > self.limit}
            self.keys_before = len(self.counts)
        self.counts = {}

    def shared(self) -> bool:
        """Whether more than one key was counted in this window or the last."""
        return len(self.counts) > 1 or self.keys_before > 1


class Lanes:
    """The lanes of one gateway process (see the module's docstring)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        team_rate = settings.lane_team_events_per_second
        customer_rate = settings.lane_customer_events_per_second
        self._teams = _Rate(team_rate * WINDOW_S) if team_rate else None
        self._customers = _Rate(customer_rate * WINDOW_S) if customer_rate else None
        self._window_ends = 0.0

    def route(
        self, messages: Sequence[WriteMessage], overflow: bool = False
    ) -> tuple[Sequence[WriteMessage], Sequence[WriteMessage]]:
        """(main lane, overflow lane) of one request's ``messages`` (all of one team),
        in their order; ``overflow``: the team is under the overflow control. A delete
        goes to both (``with_deletes_in_every_lane``)."""
        main, hot = self._route(messages, overflow)
        # schemas.topics.in_every_lane, inlined: nearly no request holds a delete, and
        # this runs on every one.
        if any(m.op == "delete_customer" for m in messages):
            return with_deletes_in_every_lane(messages, main, hot)
        return main, hot

    def _route(
        self, messages: Sequence[WriteMessage], overflow: bool
    ) -> tuple[Sequence[WriteMessage], Sequence[WriteMessage]]:
        if overflow:
            metrics.overflowed("control", len(messages))
            return (), messages
        now = self._clock()
        if now >= self._window_ends:
            self._roll(now)
        teams = self._teams
        if (
            teams is not None
            and teams.over(messages[0].team_id, len(messages))
            and teams.shared()  # a team alone on this process slows down nobody
        ):
            metrics.overflowed("team", len(messages))
            return (), messages
        customers = self._customers
        if customers is None:
            return messages, ()
        # On every write: _Rate.over, inlined (a call per message costs a tenth of this
        # loop).
        counts, hot_keys, limit = customers.counts, customers.hot, customers.limit
        hot: list[WriteMessage] | None = None
        for message in messages:
            key = partition_key(message.team_id, message.identifiers)
            count = counts[key] = counts.get(key, 0) + 1
            if count > limit or key in hot_keys:
                if hot is None:
                    hot = []
                hot.append(message)
        if hot is None:
            return messages, ()
        hot_ids = {id(m) for m in hot}
        main = [m for m in messages if id(m) not in hot_ids]
        metrics.overflowed("customer", len(hot))
        return main, hot

    def _roll(self, now: float) -> None:
        # What was counted belongs to the window just ended, unless a whole window
        # passed since with nothing counted.
        skipped = now >= self._window_ends + WINDOW_S
        for rate in (self._teams, self._customers):
            if rate is not None:
                rate.roll(last_window_empty=skipped)
        self._window_ends = now + WINDOW_S
