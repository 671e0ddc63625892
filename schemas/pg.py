"""PostgreSQL types shared by the gateway and the consumers."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run the same queries.
Connection = asyncpg.Connection | PoolConnectionProxy
