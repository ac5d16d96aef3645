"""verify, export and stats against a real database and a real legacy folder."""
from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta, timezone

import pybase64
import pytest

from server.legacy.export import FAILED, SAME, WRITTEN, export
from server.legacy.importer import IMPORTED
from server.legacy.manifest import read_manifest
from server.legacy.stats import collect
from server.legacy.verify import verify
from server.store.sqlfiles import Q
from tests.legacy_util import make_chat, run_import
from tests.procs import run_cli


@pytest.fixture
async def imported(store, pool, tmp_path):
    chat = await make_chat(pool, tmp_path)
    report, _ = await run_import(store, chat)
    return chat, {r.name: r.media_id for r in report.rows if r.outcome == IMPORTED}


async def _verify(store, **kw):
    return await verify(store, out=io.StringIO(), bar=False, **kw)


async def test_verify_passes_on_intact_media(store, imported):
    chat, ids = imported
    checked, problems = await _verify(store, source=chat.folder)
    assert (checked, problems) == (4, [])


async def test_verify_catches_a_tampered_chunk(store, pool, imported):
    chat, ids = imported
    victim = ids["a.jpg"]       # 40,000 bytes: 14 chunks of 3 KiB
    async with pool.acquire() as conn:
        data = await conn.fetchval("SELECT data FROM content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1) "
                                   "AND seq = 3", victim)
        raw = bytearray(pybase64.b64decode(data))
        raw[100] ^= 0xFF
        await conn.execute("UPDATE content_chunks SET data = $1 WHERE content_id = (SELECT content_id FROM media_files WHERE id = $2) "
                           "AND seq = 3", pybase64.b64encode(bytes(raw)).decode(), victim)
    checked, problems = await _verify(store)
    assert checked == 4
    assert [(p.media_id, p.legacy_name) for p in problems] == [(victim, "a.jpg")]
    assert "sha256" in problems[0].what


async def test_verify_catches_a_missing_chunk_and_a_grown_last_chunk(store, pool, imported):
    chat, ids = imported
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1) AND seq = 2",
                           ids["a.jpg"])
        last = await conn.fetchrow("SELECT seq, data FROM content_chunks WHERE content_id = (SELECT content_id FROM media_files WHERE id = $1) "
                                   "ORDER BY seq DESC LIMIT 1", ids["2023/c.jpg"])
        grown = pybase64.b64encode(pybase64.b64decode(last["data"]) + b"xyz").decode()
        await conn.execute("UPDATE content_chunks SET data = $1 WHERE content_id = (SELECT content_id FROM media_files WHERE id = $2) AND seq = $3",
                           grown, ids["2023/c.jpg"], last["seq"])
        # The DBA's invariant queries see the gap too.
        gaps = await Q.broken_chunk_gaps.fetch(conn)
        missing = await Q.broken_complete_without_chunks.fetch(conn)
        content = await conn.fetchval("SELECT content_id FROM media_files WHERE id = $1",
                                      ids["a.jpg"])
    assert [r["content_id"] for r in gaps] == [content]
    assert [r["id"] for r in missing] == [content]
    _, problems = await _verify(store)
    by_id = {p.media_id: p.what for p in problems if p.media_id is not None}
    assert set(by_id) == {ids["a.jpg"], ids["2023/c.jpg"]}
    assert "expected 14" in by_id[ids["a.jpg"]]
    # The store's invariants, checked first, name the content with the gap.
    found = [p.what for p in problems if p.media_id is None]
    assert any(w.startswith("broken_chunk_gaps: ") and f"content_id={content}" in w
               for w in found), found
    assert "holds" in by_id[ids["2023/c.jpg"]]


async def test_verify_one_media_and_an_unknown_one(store, pool, imported):
    chat, ids = imported
    checked, problems = await _verify(store, media_id=ids["b.png"])
    assert (checked, problems) == (1, [])
    _, problems = await _verify(store, media_id=999_999)
    assert [p.media_id for p in problems] == [999_999]


async def test_verify_from_catches_a_legacy_copy_that_differs(store, imported):
    chat, ids = imported
    (chat.folder / "b.png").write_bytes(b"\x89PNG different")
    _, problems = await _verify(store, source=chat.folder)
    assert [(p.legacy_name, p.what) for p in problems] == [
        ("b.png", "the legacy file differs from the one imported")]


async def test_orphaned_chunk_query(store, pool, imported):
    chat, ids = imported
    async with pool.acquire() as conn:
        assert await Q.broken_orphaned_chunks.fetch(conn) == []
        await conn.execute("INSERT INTO content_chunks (content_id, seq, data) VALUES ((SELECT content_id FROM media_files WHERE id = $1), 99, 'AAAA')",
                           ids["b.png"])
        rows = await Q.broken_orphaned_chunks.fetch(conn)
        content = await conn.fetchval("SELECT content_id FROM media_files WHERE id = $1",
                                      ids["b.png"])
    assert [(r["content_id"], r["seq"]) for r in rows] == [(content, 99)]


async def test_export_reproduces_the_original_bytes(store, imported, tmp_path):
    chat, ids = imported
    to = tmp_path / "restored"
    results = await export(store, to, out=io.StringIO(), bar=False)
    assert {r.name: r.outcome for r in results} == {n: WRITTEN for n in ids}
    for name in ids:
        assert (to / name).read_bytes() == chat.files[name]
    manifest = {r["legacy_name"]: r for r in read_manifest(to / "manifest.csv")}
    assert manifest["2023/c.jpg"]["sha256"] == chat.sha("2023/c.jpg").hex()
    assert manifest["2023/c.jpg"]["media_id"] == str(ids["2023/c.jpg"])
    assert manifest["2023/c.jpg"]["legacy_sha256"] == chat.sha("2023/c.jpg").hex()
    assert manifest["2023/c.jpg"]["processed"] == "false"
    # Again into the same folder: already there. A different file there: never overwritten.
    (to / "b.png").write_bytes(b"not the same")
    again = {r.name: r.outcome for r in await export(store, to, out=io.StringIO(), bar=False)}
    assert again["a.jpg"] == SAME and again["b.png"] == FAILED
    assert (to / "b.png").read_bytes() == b"not the same"


async def test_export_one_message_or_since(store, imported, message_id, tmp_path):
    chat, ids = imported
    got = await export(store, tmp_path / "one", message_id=chat.messages["b"],
                       out=io.StringIO(), bar=False)
    assert [r.name for r in got] == ["b.png"]
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert await export(store, tmp_path / "none", since=future, out=io.StringIO(),
                        bar=False) == []


async def test_stats_match_what_was_seeded(store, pool, imported):
    chat, ids = imported
    stats = await collect(store, chat.folder)
    assert stats["messages"] == len(chat.messages)
    assert stats["messages_with_media"] == 4
    images = stats["media_by_type"]["image"]
    sizes = [len(chat.files[n]) for n in ids]
    assert images["count"] == 4 and images["bytes"] == sum(sizes)
    assert images["stored_bytes"] == sum(4 * ((s + 2) // 3) for s in sizes)
    async with pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT sum(octet_length(data)) FROM content_chunks "
            "WHERE content_id IN (SELECT content_id FROM media_files)")
        contents = await conn.fetchval("SELECT count(*) FROM media_contents")
    assert images["stored_bytes"] == stored
    assert stats["storage"]["contents"] == contents
    assert stats["storage"]["logical_bytes"] >= sum(sizes)
    assert (stats["storage"]["logical_bytes"] - stats["storage"]["stored_bytes"]
            == stats["storage"]["dedup_saved_bytes"])
    assert stats["legacy"] == {"imported": 4, "imported_bytes": sum(sizes), "left": 2}
    assert stats["uploads_in_progress"] == {"count": 0, "bytes": 0}
    assert stats["chunk_table_bytes"] > sum(sizes)
    assert stats["zapi"] == {"sent": 0, "not_sent": 4, "pending": 0, "failed_or_unknown": 0}
    # The outbox's deliveries (test-harness rows): two to go, one given up, one sent.
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO zapi_deliveries (media_id, phone, state) VALUES ($1, '5511', $2)",
            [(ids["a.jpg"], "queued"), (ids["b.png"], "queued"), (ids["a.jpg"], "failed"),
             (ids["2023/c.jpg"], "sent")])
        await conn.execute("UPDATE media_files SET zapi_sent = true WHERE id = $1",
                           ids["2023/c.jpg"])
    stats = await collect(store, chat.folder)
    assert stats["zapi"] == {"sent": 1, "not_sent": 3, "pending": 2, "failed_or_unknown": 1}


def test_cli_verify_export_stats(db_dsn, tmp_path):
    from tests.process.test_legacy_import import _make_chat_dsn
    chat = asyncio.run(_make_chat_dsn(db_dsn, tmp_path))
    env = {"DATABASE_URL": db_dsn, "MEDIA_CHUNK_BYTES": "3072"}
    assert run_cli(["import-legacy", "--from", str(chat.folder)], env).returncode == 1
    res = run_cli(["verify", "--from", str(chat.folder)], env)
    assert res.returncode == 0 and "checked: 4, mismatches: 0" in res.stdout, res.stderr
    res = run_cli(["stats", "--json", "--from", str(chat.folder)], env)
    stats = json.loads(res.stdout)
    assert stats["messages_with_media"] == 4 and stats["media_by_type"]["image"]["count"] == 4
    res = run_cli(["export", "--to", str(tmp_path / "out")], env)
    assert res.returncode == 0 and "exported: 4" in res.stdout
    assert (tmp_path / "out" / "foto 1.jpg").read_bytes() == chat.files["foto 1.jpg"]
    res = run_cli(["export", "--to", str(tmp_path / "x"), "--since", "yesterday"], env)
    assert res.returncode == 2 and "ISO 8601" in res.stderr
    # A tampered chunk: non-zero, the id named.
    asyncio.run(_tamper(db_dsn))
    res = run_cli(["verify"], env)
    assert res.returncode == 1 and "media with problems: " in res.stdout
    assert "Traceback" not in res.stderr


async def _tamper(dsn):
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE content_chunks SET data = 'AAAA' || substr(data, 5) "
                           "WHERE (content_id, seq) = (SELECT min(content_id), 0 FROM content_chunks)")
    finally:
        await conn.close()


async def test_verify_and_stats_on_partitioned_chunks(store, db_dsn, imported):
    # docs/scaling.md's optional hash partitioning: the figures and checks still hold.
    from server.cli.migrate import PARTITIONING_DIR, apply_migrations
    chat, ids = imported
    apply_migrations(db_dsn, folder=PARTITIONING_DIR)
    stats = await collect(store)
    assert stats["chunk_table_bytes"] > sum(len(chat.files[n]) for n in ids)
    checked, problems = await _verify(store, source=chat.folder)
    assert (checked, problems) == (4, [])


async def test_monitoring_largest_files_and_growth(store, pool, imported):
    chat, ids = imported
    async with pool.acquire() as conn:
        largest = await Q.largest_files.fetch(conn, n=2)
        growth = await Q.growth_per_day.fetch(conn, days=7)
    assert [r["id"] for r in largest] == [ids["a.jpg"], ids["2023/c.jpg"]]
    assert len(growth) == 1
    assert growth[0]["files"] == 4
    assert growth[0]["bytes"] == sum(len(chat.files[n]) for n in ids)
