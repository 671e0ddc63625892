"""A short-lived cache of API-key lookups, so the hot path does not query PostgreSQL per request."""

from __future__ import annotations

import time

# Positive lookups are cached briefly so the hot path does not query PostgreSQL on
# every request; a revoked key stops working within this many seconds.
KEY_CACHE_SECONDS = 10.0


class KeyCache:
    def __init__(self) -> None:
        self._teams: dict[bytes, tuple[int, float]] = {}

    def get(self, digest: bytes) -> int | None:
        hit = self._teams.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, digest: bytes, team_id: int) -> None:
        if len(self._teams) > 10_000:
            self._teams.clear()
        self._teams[digest] = (team_id, time.monotonic() + KEY_CACHE_SECONDS)
