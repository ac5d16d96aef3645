"""Small helpers for tests that manage databases themselves."""
from __future__ import annotations

import uuid
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


async def copy_of_template(server_dsn: str, template_dsn: str, prefix: str) -> str:
    """A new database made from the migrated template (for a module's own fixtures);
    drop it with :func:`drop_database`."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    template = urlsplit(template_dsn).path.lstrip("/")
    await admin(server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return dsn_for(server_dsn, name)


async def drop_database(server_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    await admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
