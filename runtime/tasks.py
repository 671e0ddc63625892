"""Background tasks of a process: a step repeated on a timer, and stopping a task.

Imports the standard library and ``runtime.pg`` (what counts as PostgreSQL away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from runtime.pg import is_unavailable

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and return once it has ended; its cancellation is
    not an error, any other exception it ended with is raised."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def every(interval_s: float, step: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``step`` now and then every ``interval_s``, for ever. A PostgreSQL that does
    not answer is logged (``could not read <what>``) and tried again at the next
    turn, keeping what the last turn read; any other error ends the task."""
    while True:
        try:
            await step()
        except Exception as exc:
            if not is_unavailable(exc) and not isinstance(exc, TimeoutError):
                raise
            log.warning("could not read %s (%s); keeping the last ones", what, exc)
        await asyncio.sleep(interval_s)
