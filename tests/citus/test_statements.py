"""Every named statement of sql/ planned by Citus on the distributed schema (EXPLAIN,
rolled back): those the distributed layout cannot run yet are exactly the ones listed
in docs/scaling.md ("What does not run on Citus yet"), each with its reason."""
from __future__ import annotations

import uuid

import asyncpg

from server.legacy.columns import PLACEHOLDER, render
from server.store.sqlfiles import Q
from tests.database.test_sqlfiles import CITUS_ONLY
from tests.procs import REPO

# Statement -> what Citus says; the same list is in docs/scaling.md.
NOT_YET = {
    "reclaim_stale_uploads": "direct joins between distributed and local tables",
    "tus_reclaim_expired": "FOR UPDATE/SHARE",
}

_SAMPLES = {"int2": 1, "int4": 1, "int8": 1, "float8": 1.0, "numeric": 1, "bool": False,
            "text": "x", "varchar": "x", "bpchar": "x", "bytea": b"A" * 32,
            "uuid": uuid.UUID(int=1), "jsonb": "{}", "json": "{}", "inet": "127.0.0.1"}


async def _plan_error(conn, sql: str) -> str | None:
    prepared = await conn.prepare(sql)
    args = [_SAMPLES.get(t.name) for t in prepared.get_parameters()]
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.fetch("EXPLAIN " + sql, *args)
        return None
    except asyncpg.PostgresError as e:
        return str(e)
    finally:
        await tx.rollback()


async def test_statements_plan_on_citus_but_the_listed_ones(distributed):
    conn = await asyncpg.connect(distributed.dsn)
    failing = {}
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE messages ADD COLUMN IF NOT EXISTS media_url TEXT")
            for name in sorted(set(Q.names()) - CITUS_ONLY):
                st = getattr(Q, name)
                if PLACEHOLDER in st.sql:
                    st = render(st, '"media_url"')
                if (error := await _plan_error(conn, st.sql)) is not None:
                    failing[name] = error
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()
    assert set(failing) == set(NOT_YET), failing
    for name, reason in NOT_YET.items():
        assert reason in failing[name]
    doc = (REPO / "docs" / "scaling.md").read_text()
    assert all(f"`{name}`" in doc for name in NOT_YET)


class _Rollback(Exception):
    pass
