"""Small helpers for tests that manage databases themselves."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


def dsn_for(dsn: str, dbname: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + dbname))


async def admin(dsn: str, *statements: str) -> None:
    """Run statements on their own connection (test-harness DDL on names we generate)."""
    conn = await asyncpg.connect(dsn)
    try:
        for st in statements:
            await conn.execute(st)
    finally:
        await conn.close()


async def fetchval(dsn: str, sql: str, *args):
    """One value from a query on its own connection (checking rows from a test)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def new_message(dsn: str) -> int:
    """A new message to attach media to (test-only SQL)."""
    return await fetchval(dsn, "INSERT INTO messages DEFAULT VALUES RETURNING id")


async def create_api_key(dsn: str, scope: str = "admin", name: str | None = None) -> str:
    """A new API key in the database at ``dsn`` (what ``run.py keys create`` does)."""
    import uuid

    from server.security.keys import create_key
    conn = await asyncpg.connect(dsn)
    try:
        return await create_key(conn, name or f"test-{scope}-{uuid.uuid4().hex[:8]}", scope)
    finally:
        await conn.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
