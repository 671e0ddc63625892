"""PostgreSQL plumbing shared by the gateway and the consumers: the connection type, and
which errors mean the store is unavailable."""

from __future__ import annotations

import asyncpg
import asyncpg.exceptions._base as asyncpg_base
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run the same queries.
Connection = asyncpg.Connection | PoolConnectionProxy
# What a read runs on: the pool itself, or a connection of it.
Db = asyncpg.Pool | Connection

# PostgreSQL is unreachable, restarting or refusing connections, or a pooled
# connection broke: nothing is wrong with the request or the message, and the same
# work succeeds later. Gateway: 503 with Retry-After; consumers: retry until it passes.
UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # 08xxx: the connection was lost or refused
    asyncpg.OperatorInterventionError,  # 57Pxx: admin/crash shutdown, cannot connect now
    asyncpg.InsufficientResourcesError,  # 53xxx: too many connections, disk full
    # Client-side states of a connection the pool handed back after a restart
    # ("cannot switch to state 15; another operation (2) is in progress").
    asyncpg.InternalClientError,
    asyncpg.InterfaceError,
    OSError,  # ConnectionError and TimeoutError among them
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means PostgreSQL is unavailable (``UNAVAILABLE``).

    asyncpg's client-side ``DataError`` (a value its encoder refuses, such as an
    integer beyond 64 bits) is an ``InterfaceError`` too, but the input is at fault.
    """
    return isinstance(exc, UNAVAILABLE) and not isinstance(exc, asyncpg_base.DataError)
