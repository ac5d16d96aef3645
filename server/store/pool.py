"""The asyncpg pool: opened and closed with the application.

The store is the only package that imports asyncpg: what other packages need of it (a
connection's type, the errors a database call can raise, a connection of their own for
a command line tool) they take from here, so a change of driver stays in this package.
"""
from __future__ import annotations

import json

import asyncpg
from aiohttp import web

from server.settings import Settings


async def _init_connection(conn: asyncpg.Connection) -> None:
    # dimensions is JSONB: hand Python objects in and out, not JSON text.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                              schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's reset query (RESET ALL; UNLISTEN *; CLOSE
    ALL; pg_advisory_unlock_all()): a round trip on every release, a sixth of a
    download's time and as much as the query itself for a small photo. Nothing here
    leaves session state on a pooled connection: settings are changed only with
    set_config(..., true), for one transaction; LISTEN has a connection of its own
    (store/invalidation.py); the session locks (legacy/lock.py, a thumbnail's maker in
    processing/ondemand.py) are released by their holder or go with their connection. asyncpg still rolls back an open transaction
    before calling this."""


async def create_pool(dsn: str, settings: Settings, *,
                      min_size: int | None = None, admin: bool = False) -> asyncpg.Pool:
    """The pool; ``admin``: for a command line tool, whose statements are bounded by
    DB_ADMIN_COMMAND_TIMEOUT_SECONDS instead of the requests' DB_COMMAND_TIMEOUT_SECONDS."""
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.db.pool_min if min_size is None else min_size,
        max_size=settings.db.pool_max,
        init=_init_connection,
        reset=_keep_session,
        # Idle connections are recycled so a pool sized for peaks shrinks again.
        max_inactive_connection_lifetime=300,
        command_timeout=settings.db.admin_command_timeout if admin else
        settings.db.command_timeout,
    )


# A connection, for annotations outside the store.
Connection = asyncpg.Connection
# What a statement can raise when the database refuses it or the connection fails.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError,
                                                    asyncpg.InterfaceError)
# A unique constraint refused the row (e.g. a key name taken).
UniqueViolation = asyncpg.UniqueViolationError


async def connect(dsn: str, *, command_timeout: float | None = None) -> Connection:
    """One connection of its own (command line tools), not from a pool."""
    return await asyncpg.connect(dsn, command_timeout=command_timeout)


# The database the application's pool connects to (the embedded server's included).
DSN = web.AppKey("dsn", str)
