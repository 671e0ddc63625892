"""Long requests give the event loop a turn: ``Pacer`` yields after every slice of work.

A batch is translated message by message on the event loop; without a turn in
between, a 5 MB batch would keep every other request waiting (``/healthz`` included)
for as long as it takes. Work is counted in bytes of JSON translated: a slice of
``SLICE_BYTES`` costs about a millisecond of typical JSON, and a few at most of the
worst (its objects are bounded by ``schemas.limits.MAX_JSON_CONTAINERS`` anyway).

Imports: asyncio only.
"""

from __future__ import annotations

import asyncio

SLICE_BYTES = 64 * 1024


class Pacer:
    """Counts the bytes a request has worked through. In a loop over items::

        if pacer.due(len(item)):
            await pacer.turn()

    gives the event loop a turn once a slice is done (a turn costs ~10 us: once per
    slice; ``due`` is a plain call, so an item costs no coroutine)."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = 0

    def due(self, size: int) -> bool:
        """Count ``size`` more bytes; whether a slice is done."""
        self._since += size
        return self._since >= SLICE_BYTES

    async def turn(self) -> None:
        self._since = 0
        await asyncio.sleep(0)

    async def worked(self, size: int) -> None:
        """``due`` then ``turn``, where a coroutine per call costs nothing that matters."""
        if self.due(size):
            await self.turn()
