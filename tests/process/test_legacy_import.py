"""import-legacy against a real folder and a real messages table."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from server.legacy.importer import (ALREADY, CHANGED, FAILED, IMPORTED, ORPHAN,
                                    WOULD_IMPORT)
from server.legacy.manifest import read_manifest
from server.legacy.lock import LegacyBusy, legacy_lock
from server.store.sqlfiles import Q
from tests.legacy_util import make_chat, run_import
from tests.procs import REPO, RUN_PY, clean_env


@pytest.fixture
async def chat(pool, tmp_path):
    return await make_chat(pool, tmp_path)


def outcomes(report) -> dict[str, str]:
    return {r.name: r.outcome for r in report.rows}


async def _stored(store, media_id: int) -> bytes:
    rec = await store.stat(media_id)
    return b"".join([p async for p in store.read(rec, 0, rec.file_size - 1)])


async def test_import_stores_each_file_with_its_own_bytes_and_owner(store, pool, chat):
    report, out = await run_import(store, chat)
    assert outcomes(report) == {
        "a.jpg": IMPORTED, "b.png": IMPORTED, "2023/c.jpg": IMPORTED,
        "foto 1.jpg": IMPORTED, "orphan.jpg": ORPHAN, "page.html": FAILED}
    m = chat.messages
    owners = {r.name: r.message_id for r in report.rows if r.outcome == IMPORTED}
    # a.jpg is pointed at twice: the older message owns it.
    assert owners == {"a.jpg": m["a"], "b.png": m["b"], "2023/c.jpg": m["c"],
                      "foto 1.jpg": m["foto"]}
    for r in report.rows:
        if r.outcome == IMPORTED:
            assert await _stored(store, r.media_id) == chat.files[r.name]
            rec = await store.stat(r.media_id)
            assert rec.sha256 == r.sha256 == chat.sha(r.name)   # sha256 = the file's
            assert rec.message_id == owners[r.name]
            assert rec.original_name == r.name.rsplit("/", 1)[-1]
    assert report.missing == [(m["missing"], "gone.jpg")]
    assert "unsupported_media_type" in dict((r.name, r.reason) for r in report.rows)["page.html"]
    assert f"message {m['missing']} points at gone.jpg" in out
    assert "orphan: orphan.jpg" in out
    assert not report.ok                                        # page.html failed
    summary = "\n".join(report.summary())
    assert "imported: 4" in summary and "failed: 1" in summary and "missing" in summary
    assert "orphans (no message points at them): 1, left alone" in summary
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM legacy_media") == 4
        # Without --rewrite-urls the messages are untouched.
        assert await conn.fetchval("SELECT media_url FROM messages WHERE id = $1",
                                   m["a"]) == "/uploads/media/a.jpg"


async def test_second_run_imports_nothing_twice(store, pool, chat):
    await run_import(store, chat)
    report, out = await run_import(store, chat)
    assert outcomes(report)["a.jpg"] == ALREADY
    assert report.count(IMPORTED) == 0 and report.count(ALREADY) == 4
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 4
        assert await conn.fetchval("SELECT count(*) FROM legacy_media") == 4


async def test_interrupted_run_continues(store, pool, chat):
    # A run killed while importing c.jpg: a.jpg and b.png were recorded, c.jpg's upload
    # was left half-written (what the janitor reclaims).
    first, _ = await run_import(store, chat)
    ids = {r.name: r.media_id for r in first.rows if r.outcome == IMPORTED}
    async with pool.acquire() as conn:
        for name in ("2023/c.jpg", "foto 1.jpg"):
            await conn.execute("DELETE FROM media_files WHERE id = $1", ids[name])
        await Q.create_upload.fetchrow(conn, file_name="half.jpg", original_name="c.jpg",
                                       mime_type="image/jpeg", media_type="image",
                                       chunk_size=3072, instance_id=None)
    report, _ = await run_import(store, chat)
    assert outcomes(report)["a.jpg"] == ALREADY and outcomes(report)["b.png"] == ALREADY
    assert outcomes(report)["2023/c.jpg"] == IMPORTED
    assert outcomes(report)["foto 1.jpg"] == IMPORTED
    async with pool.acquire() as conn:
        assert await conn.fetchval(
            "SELECT count(*) FROM media_files WHERE upload_state = 'complete'") == 4


async def test_changed_file_is_reported_not_reimported(store, chat):
    await run_import(store, chat)
    (chat.folder / "b.png").write_bytes(chat.files["b.png"] + b"x")
    report, out = await run_import(store, chat)
    assert outcomes(report)["b.png"] == CHANGED
    assert "changed since imported: b.png" in out
    assert not report.ok and report.count(IMPORTED) == 0


async def test_touched_but_identical_file_is_already_there(store, chat):
    await run_import(store, chat)
    path = chat.folder / "a.jpg"
    path.write_bytes(chat.files["a.jpg"])         # new mtime, same bytes
    report, _ = await run_import(store, chat)
    assert outcomes(report)["a.jpg"] == ALREADY


async def test_dry_run_changes_nothing(store, pool, chat):
    report, out = await run_import(store, chat, dry_run=True, rewrite_urls=True)
    assert outcomes(report) == {
        "a.jpg": WOULD_IMPORT, "b.png": WOULD_IMPORT, "2023/c.jpg": WOULD_IMPORT,
        "foto 1.jpg": WOULD_IMPORT, "orphan.jpg": ORPHAN, "page.html": FAILED}
    assert "would import: a.jpg" in out
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0
        assert await conn.fetchval("SELECT count(*) FROM content_chunks") == 0
        assert await conn.fetchval("SELECT count(*) FROM legacy_media") == 0
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE media_url LIKE "
                                   "'/api/%'") == 0


async def test_orphans_to_attaches_them(store, chat):
    report, _ = await run_import(store, chat, orphans_to=chat.messages["none"])
    row = {r.name: r for r in report.rows}["orphan.jpg"]
    assert row.outcome == IMPORTED and row.message_id == chat.messages["none"]
    assert (await store.stat(row.media_id)).message_id == chat.messages["none"]
    assert (f"orphans (no message points at them): 1, attached to message "
            f"{chat.messages['none']}") in report.summary()


async def test_orphans_to_an_unknown_message_is_refused(store, chat):
    with pytest.raises(ValueError, match="does not exist"):
        await run_import(store, chat, orphans_to=999_999)


async def test_rewrite_urls_points_messages_at_the_new_route(store, pool, chat):
    report, _ = await run_import(store, chat, rewrite_urls=True)
    ids = {r.name: r.media_id for r in report.rows}
    m = chat.messages
    async with pool.acquire() as conn:
        url = {label: await conn.fetchval("SELECT media_url FROM messages WHERE id = $1", i)
               for label, i in m.items()}
    assert url["a"] == url["a_again"] == f"/api/media/serve/{ids['a.jpg']}"
    assert url["b"] == f"/api/media/serve/{ids['b.png']}"
    assert url["foto"] == f"/api/media/serve/{ids['foto 1.jpg']}"
    assert url["missing"] == "/uploads/media/gone.jpg"       # nothing to point at
    assert url["page"] == "/uploads/media/page.html"        # its import failed
    assert url["unrelated"] == "/somewhere/else.jpg"
    assert sum(r.rewritten for r in report.rows) == 5


async def test_rewrite_urls_on_a_later_run(store, pool, chat):
    await run_import(store, chat)
    report, _ = await run_import(store, chat, rewrite_urls=True)
    assert report.count(IMPORTED) == 0 and sum(r.rewritten for r in report.rows) == 5


async def test_rewrite_is_in_the_import_transaction(store, pool, chat):
    # The chat's table refuses the new URL for message b (a CHECK of its own): the
    # import of b.png must fail with the rewrite (no media, no map row), and the run
    # goes on with the other files.
    async with pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE messages ADD CONSTRAINT no_new CHECK (media_url NOT LIKE '/api/%' "
            f"OR id <> {int(chat.messages['b'])})")
    report, _ = await run_import(store, chat, rewrite_urls=True)
    row = {r.name: r for r in report.rows}["b.png"]
    assert row.outcome == FAILED and "CheckViolation" in row.reason
    assert outcomes(report)["a.jpg"] == IMPORTED
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM legacy_media "
                                   "WHERE legacy_name = 'b.png'") == 0
        assert await conn.fetchval("SELECT count(*) FROM media_files WHERE "
                                   "original_name = 'b.png'") == 0


@pytest.mark.parametrize("column", ["nope", "id", 'media_url"; DROP TABLE messages; --',
                                    "created_at"])
async def test_url_column_must_be_a_text_column_of_messages(store, chat, column):
    with pytest.raises(ValueError):
        await run_import(store, chat, url_column=column)


async def test_a_column_name_that_needs_quoting_works(store, pool, chat):
    # Any real column of messages is usable: the catalogue vouches for it, and
    # PostgreSQL's quote_ident makes it a safe identifier in the statement text.
    async with pool.acquire() as conn:
        await conn.execute('ALTER TABLE messages RENAME COLUMN media_url TO "Media ""URL"""')
    report, _ = await run_import(store, chat, url_column='Media "URL"', rewrite_urls=True)
    assert report.count(IMPORTED) == 4 and sum(r.rewritten for r in report.rows) == 5


async def test_one_run_at_a_time(store, chat):
    async with legacy_lock(store):
        with pytest.raises(LegacyBusy):
            await run_import(store, chat)


async def _advisory_locks(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")


async def test_the_lock_goes_with_the_run(store, pool, chat):
    # Pooled connections go back without asyncpg's reset query (store/pool.py): the
    # lock must be let go of by its holder, or go with its connection.
    await run_import(store, chat)
    assert await _advisory_locks(pool) == 0
    async with legacy_lock(store):
        assert await _advisory_locks(pool) == 1
    assert await _advisory_locks(pool) == 0
    # An unlock cut short (cancelled while its statement runs): the connection is
    # closed, and the lock with it, rather than pooled still holding it.
    held = legacy_lock(store)
    pid = (await held.__aenter__()).get_server_pid()
    task = asyncio.ensure_future(held.__aexit__(None, None, None))
    await asyncio.sleep(0)          # the unlock is on its way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):            # the backend ends just after
        async with pool.acquire() as c:
            gone = not await c.fetchval("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE pid = $1", pid)
        if gone:
            break
        await asyncio.sleep(0.05)
    assert gone
    assert await _advisory_locks(pool) == 0
    report, _ = await run_import(store, chat)     # and a later run is not LegacyBusy
    assert report.count(ALREADY) == 4


def test_cli_import_with_manifest(db_dsn, tmp_path):
    chat = asyncio.run(_make_chat_dsn(db_dsn, tmp_path))
    manifest = tmp_path / "manifest.csv"
    env = clean_env({"DATABASE_URL": db_dsn, "MEDIA_CHUNK_BYTES": "3072"})
    cmd = [sys.executable, str(RUN_PY), "import-legacy", "--from", str(chat.folder),
           "--manifest", str(manifest)]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr            # page.html failed
    assert "Traceback" not in res.stderr
    assert "imported: 4" in res.stdout and "page.html: unsupported_media_type" in res.stdout
    assert "imported: a.jpg -> media" in res.stdout   # plain lines, not a bar, off a TTY
    rows = {r["legacy_name"]: r for r in read_manifest(manifest)}
    assert rows["a.jpg"]["sha256"] == chat.sha("a.jpg").hex()
    assert rows["a.jpg"]["size"] == str(len(chat.files["a.jpg"]))
    assert rows["a.jpg"]["media_id"].isdigit()
    assert list(rows["a.jpg"])[:4] == ["legacy_name", "size", "sha256", "media_id"]
    assert rows["a.jpg"]["stored_sha256"] == rows["a.jpg"]["sha256"]     # bytes kept
    assert rows["a.jpg"]["processed"] == "false"
    assert rows["page.html"]["outcome"] == "failed"
    assert (rows["gone.jpg"]["outcome"], rows["gone.jpg"]["message_id"]) == (
        "missing", str(chat.messages["missing"]))
    assert rows["gone.jpg"]["processed"] == ""       # as wide as the others, empty
    # Second run: nothing new, nothing failed except the refused type.
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "imported: 0" in res.stdout and "already there: 4" in res.stdout
    bad = subprocess.run(cmd + ["--url-column", "nope"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no column 'nope'" in bad.stderr


async def _make_chat_dsn(dsn, tmp_path):
    return await _pool_dsn(dsn, lambda pool: make_chat(pool, tmp_path))


async def _pool_dsn(dsn, make):
    """``await make(pool)`` on a pool of its own (for tests that then run the CLI)."""
    from server.settings import Settings, replace_settings
    from server.store.pool import create_pool
    pool = await create_pool(dsn, replace_settings(Settings(), db__url=dsn))
    try:
        return await make(pool)
    finally:
        await pool.close()


def test_cli_progress_bar_on_a_terminal(db_dsn, tmp_path):
    # stderr on a pseudo-terminal: tqdm draws its bar there; the events stay lines on
    # stdout, and the summary follows.
    import os
    import pty
    chat = asyncio.run(_make_chat_dsn(db_dsn, tmp_path))
    master, slave = pty.openpty()
    # A real terminal has a size; tqdm draws nothing on a 0-column one.
    import fcntl
    import struct
    import termios
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        res = subprocess.run([sys.executable, str(RUN_PY), "import-legacy", "--from",
                              str(chat.folder)], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=slave, text=True, timeout=120,
                             env=clean_env({"DATABASE_URL": db_dsn}))
        os.close(slave)
        drawn = b""
        while True:
            try:
                piece = os.read(master, 65536)
            except OSError:     # EIO: the terminal's other side is closed
                break
            if not piece:
                break
            drawn += piece
    finally:
        os.close(master)
    assert res.returncode == 1
    assert b"import: 100%" in drawn and b"6/6" in drawn
    assert "imported: a.jpg -> media" in res.stdout and "imported: 4" in res.stdout


def test_a_killed_import_continues_where_it_stopped(db_dsn, tmp_path):
    # A real run SIGKILLed mid-way, then run again: every file imported exactly once.
    import os
    import signal
    import time

    from tests.dbutil import fetchval
    from tests.media import jpeg_bytes
    folder = tmp_path / "many"
    folder.mkdir()
    names = [f"f{i:03d}.jpg" for i in range(40)]
    for i, n in enumerate(names):
        (folder / n).write_bytes(jpeg_bytes(300_000, seed=i))
    asyncio.run(_add_messages(db_dsn, names))
    env = clean_env({"DATABASE_URL": db_dsn, "MEDIA_CHUNK_BYTES": "30720"})
    cmd = [sys.executable, str(RUN_PY), "import-legacy", "--from", str(folder)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(fetchval(db_dsn, "SELECT count(*) FROM legacy_media")) < 3:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = asyncio.run(fetchval(db_dsn, "SELECT count(*) FROM legacy_media"))
    assert 3 <= done < 40
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"imported: {40 - done}" in res.stdout and f"already there: {done}" in res.stdout
    assert asyncio.run(fetchval(db_dsn, "SELECT count(*) FROM media_files "
                                        "WHERE upload_state = 'complete'")) == 40
    assert asyncio.run(fetchval(db_dsn, "SELECT count(DISTINCT legacy_name) "
                                        "FROM legacy_media")) == 40


async def _add_messages(dsn, names):
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:   # the chat's column and its rows (test harness)
        await conn.execute("ALTER TABLE messages ADD COLUMN media_url TEXT")
        await conn.executemany("INSERT INTO messages (media_url) VALUES ($1)",
                               [(f"/uploads/media/{n}",) for n in names])
    finally:
        await conn.close()


async def test_process_needs_the_servers_processing(store, chat, pool):
    # --process without processing, or with the bytes-keeping policy, would silently
    # store the files as they are: refused before anything is read.
    from tests.legacy_util import policy
    with pytest.raises(ValueError, match="--process"):
        await run_import(store, chat, process=True, processing=False)
    with pytest.raises(ValueError, match="MEDIA_PROCESSING is off"):
        await run_import(store, chat, process=True, server_policy=policy(processing__enabled=False))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0


async def test_each_import_is_an_audit_row(store, pool, chat):
    report, _ = await run_import(store, chat)
    ids = sorted(r.media_id for r in report.rows if r.outcome == IMPORTED)
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT actor, media_id, message_id, outcome FROM "
                                "media_audit_log WHERE action = 'legacy_import' "
                                "ORDER BY media_id")
    assert [r["media_id"] for r in rows] == ids
    assert {(r["actor"], r["outcome"]) for r in rows} == {("cli:import-legacy", "ok")}
    await run_import(store, chat)                 # nothing imported: nothing audited
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_audit_log WHERE "
                                   "action = 'legacy_import'") == len(ids)
