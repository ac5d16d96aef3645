"""Migrations against a fresh, empty database: idempotent, reversible, safe to run from
several instances at once, and respectful of a chat database's own messages table."""
from __future__ import annotations

import subprocess
import sys
import uuid

import asyncpg
import pytest

from server.cli.migrate import (MIGRATIONS_DIR, apply_migrations, pending_migrations,
                                rollback_migrations)
from server.settings import Settings, replace_settings
from server.store.media import MediaStore
from server.store.pool import create_pool
from tests.dbutil import admin, dsn_for, fetchval
from tests.media import jpeg_bytes
from tests.procs import REPO, RUN_PY, clean_env

def _all_ids() -> list[str]:
    # Every migration in the order yoyo applies them: tests follow the folder, so a new
    # migration needs no edit here.
    from yoyo import read_migrations
    from yoyo.migrations import topological_sort
    return [m.id for m in topological_sort(read_migrations(str(MIGRATIONS_DIR)))]


ALL = _all_ids()
LAST = ALL[-1]


@pytest.fixture
async def empty_dsn(pg_server_dsn):
    """A new database with nothing in it (not even yoyo's tables)."""
    name = f"media_mig_{uuid.uuid4().hex[:16]}"
    # Test-harness DDL on an identifier we generate.
    await admin(pg_server_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for(pg_server_dsn, name)
    finally:
        await admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = current_schema()")
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


async def test_apply_then_apply_again_is_a_no_op(empty_dsn):
    assert apply_migrations(empty_dsn) == ALL
    tables = await _tables(empty_dsn)
    assert {"messages", "media_files", "content_chunks", "media_contents", "media_files_complete"} <= tables
    assert apply_migrations(empty_dsn) == []
    assert await fetchval(empty_dsn, "SELECT count(*) FROM _yoyo_migration") == len(ALL)


async def test_rollback_one(empty_dsn):
    apply_migrations(empty_dsn)
    assert rollback_migrations(empty_dsn) == [LAST]
    assert pending_migrations(empty_dsn) == [LAST]
    assert "messages" in await _tables(empty_dsn)
    assert apply_migrations(empty_dsn) == [LAST]


@pytest.mark.parametrize("count", [0, -1])
async def test_rollback_refuses_a_count_below_one(empty_dsn, count):
    # [:-1] would have rolled back all but one migration.
    apply_migrations(empty_dsn)
    with pytest.raises(ValueError):
        rollback_migrations(empty_dsn, count)
    assert apply_migrations(empty_dsn) == []   # nothing was rolled back


async def test_run_py_rollback(empty_dsn):
    apply_migrations(empty_dsn)
    env = clean_env({"DATABASE_URL": empty_dsn})
    for bad in ("0", "-1", "two"):
        res = subprocess.run([sys.executable, str(RUN_PY), "rollback", bad], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and "count" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert await fetchval(empty_dsn, "SELECT count(*) FROM _yoyo_migration") == len(ALL)
    res = subprocess.run([sys.executable, str(RUN_PY), "rollback"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(f"rolled back: {LAST}")
    assert await fetchval(empty_dsn, "SELECT count(*) FROM _yoyo_migration") == len(ALL) - 1


async def test_rollback_all_then_reapply(empty_dsn):
    assert apply_migrations(empty_dsn) == ALL
    assert rollback_migrations(empty_dsn, len(ALL)) == list(reversed(ALL))
    tables = await _tables(empty_dsn)
    assert not {"media_files", "content_chunks", "media_contents", "media_files_complete"} & tables
    assert await fetchval(empty_dsn, "SELECT to_regprocedure('media_file_data(integer)')") \
        is None
    # 0001's rollback keeps messages on purpose (it may be the chat database's own).
    assert "messages" in tables
    assert await fetchval(empty_dsn, "SELECT count(*) FROM _yoyo_migration") == 0

    assert apply_migrations(empty_dsn) == ALL
    assert apply_migrations(empty_dsn) == []
    # And the schema works: a file goes in and comes back whole.
    settings = replace_settings(Settings(), db__url=empty_dsn, store__chunk_bytes=3 * 1024)
    pool = await create_pool(empty_dsn, settings)
    try:
        store = MediaStore(pool, chunk_size=settings.store.chunk_bytes)
        data = jpeg_bytes(10_000)
        rec = await _store_file(store, await store.create_message(), data)
        assert b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)]) == data
    finally:
        await pool.close()


async def _store_file(store: MediaStore, message_id: int, data: bytes):
    upload = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.jpg",
                                      original_name="a.jpg", mime_type="image/jpeg",
                                      media_type="image")
    await upload.write(data)
    return await upload.finish(message_id)


def _migrate_process(dsn: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUN_PY), "migrate"], cwd=REPO,
                            env=clean_env({"DATABASE_URL": dsn}), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("n", [2, 4])
async def test_concurrent_migrate_processes_apply_once(empty_dsn, n):
    procs = [_migrate_process(empty_dsn) for _ in range(n)]
    try:
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    outs = sorted(out.strip() for out, _ in results)
    # yoyo's lock: exactly one process applied everything, the others found it done.
    assert outs == ["applied: " + ", ".join(ALL)] + ["applied: nothing, up to date"] * (n - 1)
    assert await fetchval(empty_dsn, "SELECT count(*) FROM _yoyo_migration") == len(ALL)
    assert await fetchval(
        empty_dsn, "SELECT count(*) FROM _yoyo_log WHERE operation = 'apply'") == len(ALL)
    assert await fetchval(empty_dsn, "SELECT count(*) FROM yoyo_lock") == 0


async def test_existing_messages_table_is_kept_and_used(empty_dsn):
    # The chat product's own table: more columns, and rows this service never wrote.
    await admin(empty_dsn, """
        CREATE TABLE messages (
            id         SERIAL PRIMARY KEY,
            chat_id    TEXT NOT NULL,
            body       TEXT NOT NULL,
            sent_at    TIMESTAMPTZ NOT NULL DEFAULT now()
        )""", """
        INSERT INTO messages (chat_id, body)
        VALUES ('c1', 'hello'), ('c1', 'a photo'), ('c2', 'a video')""")
    assert apply_migrations(empty_dsn) == ALL

    conn = await asyncpg.connect(empty_dsn)
    try:
        cols = [r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'messages' ORDER BY ordinal_position")]
        assert cols == ["id", "chat_id", "body", "sent_at"]
        rows = await conn.fetch("SELECT id, chat_id, body FROM messages ORDER BY id")
        assert [(r["chat_id"], r["body"]) for r in rows] == [
            ("c1", "hello"), ("c1", "a photo"), ("c2", "a video")]
        photo_msg = rows[1]["id"]
    finally:
        await conn.close()

    settings = replace_settings(Settings(), db__url=empty_dsn, store__chunk_bytes=3 * 1024)
    pool = await create_pool(empty_dsn, settings)
    try:
        store = MediaStore(pool, chunk_size=settings.store.chunk_bytes)
        data = jpeg_bytes(20_000)
        rec = await _store_file(store, photo_msg, data)
        assert [r.id for r in (await store.list_page(photo_msg, 100, None))[0]] == [rec.id]
        got = b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)])
        assert got == data
    finally:
        await pool.close()

    # The foreign key points at the chat's table: deleting the message takes the media.
    await admin(empty_dsn, f"DELETE FROM messages WHERE id = {int(photo_msg)}")
    assert await fetchval(empty_dsn, "SELECT count(*) FROM media_files") == 0
    # Its content, shown by no row now, is left to the reclaim (sql/contents.sql).
    assert await fetchval(empty_dsn, "SELECT count(*) FROM media_contents c WHERE NOT "
                                     "EXISTS (SELECT 1 FROM media_files f "
                                     "WHERE f.content_id = c.id)") == 1

    # Rolling everything back never drops the chat's table or its rows.
    rollback_migrations(empty_dsn, len(ALL))
    assert await fetchval(empty_dsn, "SELECT count(*) FROM messages") == 2
    assert "media_files" not in await _tables(empty_dsn)


async def test_a_yoyo_lock_left_by_a_dead_migrator_is_cleared(empty_dsn):
    apply_migrations(empty_dsn)
    # What a migrator killed mid-way leaves: yoyo's row, and no session lock (that one
    # died with its connection).
    await admin(empty_dsn, "INSERT INTO yoyo_lock (locked, ctime, pid) "
                           "VALUES (1, now(), 999999)")
    rollback_migrations(empty_dsn, 1)   # would wait, then fail, without the clearing
    assert apply_migrations(empty_dsn, lock_timeout=5) == [LAST]
    assert await fetchval(empty_dsn, "SELECT count(*) FROM yoyo_lock") == 0


async def test_a_live_migrator_is_waited_for_not_broken(empty_dsn):
    from yoyo.exceptions import LockTimeout

    from server.store.sqlfiles import Q
    apply_migrations(empty_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval(Q.try_migration_lock.sql)   # a migrator at work
        await conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 1)")
        with pytest.raises(LockTimeout):
            apply_migrations(empty_dsn, lock_timeout=1)
        # Its yoyo lock was respected, not cleared.
        assert await conn.fetchval("SELECT count(*) FROM yoyo_lock") == 1
    finally:
        await conn.close()


def test_serving_without_migrating_refuses_a_schema_that_is_behind(empty_dsn, tmp_path):
    res = subprocess.run([sys.executable, str(RUN_PY), "serve", "--no-migrate"], cwd=REPO,
                         env=clean_env({"DATABASE_URL": empty_dsn, "PORT": "1",
                                        "MEDIA_DATA_DIR": str(tmp_path)}),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert "schema is behind" in res.stderr and "0001_messages" in res.stderr
    assert "Traceback" not in res.stderr
    apply_migrations(empty_dsn)
    from server.cli.migrate import pending_migrations
    assert pending_migrations(empty_dsn) == []


async def test_indexes_built_concurrently_beforehand_as_the_docs_say(empty_dsn):
    # A DBA on a large media_files builds 0007's indexes with CONCURRENTLY (outside
    # any transaction) before migrating; the migration then accepts them as they are.
    import re
    doc = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = doc.split("### Migrations on a large database", 1)[1].split("\n### ", 1)[0]
    statements = re.findall(r"^    (CREATE INDEX CONCURRENTLY .*;)$", section, re.M)
    assert len(statements) == 3
    apply_migrations(empty_dsn)
    rollback_migrations(empty_dsn, len(ALL) - ALL.index("0007_legacy"))
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('media_files_search_idx')") is None
        for st in statements:
            await conn.execute(st)     # asyncpg runs each outside a transaction block
        built = {r["name"]: r["oid"] for r in await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, indexrelid::int AS oid "
            "FROM pg_index WHERE indexrelid::regclass::text LIKE 'media_files_search%'")}
    finally:
        await conn.close()
    assert len(built) == 3
    assert apply_migrations(empty_dsn) == ALL[ALL.index("0007_legacy"):]
    conn = await asyncpg.connect(empty_dsn)
    try:
        after = {r["name"]: (r["oid"], r["indisvalid"]) for r in await conn.fetch(
            "SELECT indexrelid::regclass::text AS name, indexrelid::int AS oid, indisvalid "
            "FROM pg_index WHERE indexrelid::regclass::text LIKE 'media_files_search%'")}
    finally:
        await conn.close()
    assert after == {name: (oid, True) for name, oid in built.items()}
