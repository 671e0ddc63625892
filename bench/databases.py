"""Scratch databases beside the store (the test suite's and the benchmark's).

The benchmark drops its scratch database with it, and the test fixtures theirs (the
tests import it from here, as they import ``bench.bounded_work``: the bench must not
import ``tests``). Imports asyncpg only.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg


async def drop_database(admin_url: str, name: str, within_s: float = 30.0) -> None:
    """``DROP DATABASE name``, ending the sessions still in it.

    ``WITH (FORCE)`` terminates them, but it refuses outright when one of them is an
    autovacuum worker (a superuser's session, beyond an ordinary role). A plain DROP
    asks autovacuum to stop by itself, so that is the fallback, retried until the
    other sessions are gone.
    """
    deadline = time.monotonic() + within_s
    force = " WITH (FORCE)"
    while True:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
            return
        except asyncpg.InsufficientPrivilegeError:
            force = ""
        except asyncpg.ObjectInUseError:
            if time.monotonic() > deadline:
                raise
        finally:
            await conn.close()
        await asyncio.sleep(0.2)
