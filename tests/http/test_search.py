"""GET /api/media: filters, keyset pages newest first, stable under concurrent inserts,
bad parameters as 400s; and at a million rows, every filter is an index scan."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from server.api.search import decode_cursor, encode_cursor
from server.store.sqlfiles import Q
from tests.media import jpeg_bytes, png_bytes


async def _put(store, message_id: int, data: bytes, mime: str, media_type: str):
    up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.x", original_name="f",
                                  mime_type=mime, media_type=media_type)
    await up.write(data)
    return await up.finish(message_id)


async def _walk(client, query: str, limit: int) -> list[dict]:
    items, cursor, pages = [], None, 0
    while True:
        q = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/api/media?{q}")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            return items
        assert pages < 100


@pytest.fixture
async def seeded(store):
    m1, m2 = await store.create_message(), await store.create_message()
    recs = []
    for i in range(7):
        recs.append(await _put(store, m1 if i % 2 else m2, jpeg_bytes(500, seed=i),
                               "image/jpeg", "image"))
    recs.append(await _put(store, m1, png_bytes(), "image/png", "image"))
    recs.append(await _put(store, m2, b"%PDF-1.4 x", "application/pdf", "document"))
    return m1, m2, recs


def _newest_first(recs):
    return [r.id for r in sorted(recs, key=lambda r: (r.created_at, r.id), reverse=True)]


async def test_pages_newest_first_with_every_filter(client, seeded):
    m1, m2, recs = seeded
    cases = {
        "": recs,
        f"message_id={m1}": [r for r in recs if r.message_id == m1],
        "media_type=image": [r for r in recs if r.media_type == "image"],
        "mime_type=image/png": [r for r in recs if r.mime_type == "image/png"],
        f"message_id={m2}&media_type=document": [r for r in recs if r.message_id == m2
                                                  and r.media_type == "document"],
        f"message_id={m1}&mime_type=image/jpeg": [r for r in recs if r.message_id == m1
                                                   and r.mime_type == "image/jpeg"],
        "mime_type=image/jpeg&media_type=document": [],
    }
    for query, expected in cases.items():
        for limit in (1, 2, 50):
            items = await _walk(client, query, limit)
            assert [i["id"] for i in items] == _newest_first(expected), (query, limit)
    items = await _walk(client, "", 3)
    # media_json's shape, with its signed URL.
    assert items[0]["url"].startswith(f"/api/media/serve/{items[0]['id']}?")
    assert "sig=" in items[0]["url"]


async def test_needs_a_read_key(server_for, key_for, seeded):
    anonymous = await server_for(key=None)
    resp = await anonymous.get("/api/media")
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    reader = await server_for(key=await key_for("read"))
    resp = await reader.get("/api/media?limit=1")
    assert resp.status == 200 and len((await resp.json())["items"]) == 1


async def test_since_and_until(client, seeded, pool):
    m1, m2, recs = seeded
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    async with pool.acquire() as conn:   # spread the rows over days (test harness)
        for i, r in enumerate(recs):
            await conn.execute("UPDATE media_files SET created_at = $1 WHERE id = $2",
                               base + timedelta(days=i), r.id)
    items = await _walk(client, "since=2024-01-03&until=2024-01-06T00:00:00Z", 2)
    assert [i["id"] for i in items] == [recs[4].id, recs[3].id, recs[2].id]


async def test_stable_under_concurrent_inserts(client, seeded, store):
    m1, m2, recs = seeded
    seen, cursor = [], None
    while True:
        resp = await client.get("/api/media?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        body = await resp.json()
        seen += [i["id"] for i in body["items"]]
        # Someone uploads between every two pages.
        await _put(store, m1, jpeg_bytes(400), "image/jpeg", "image")
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == _newest_first(recs)          # each once, none skipped, none new


@pytest.mark.parametrize("query,word", [
    ("message_id=0", "message_id"), ("message_id=abc", "message_id"),
    ("message_id=99999999999", "message_id"),
    ("media_type=picture", "media_type"), ("mime_type=IMAGE", "mime_type"),
    ("mime_type=image", "mime_type"), ("mime_type=image/jpeg;x=1", "mime_type"),
    ("since=yesterday", "since"), ("until=2024-13-01", "until"),
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=-1", "limit"), ("limit=x", "limit"),
    ("cursor=abc", "cursor"), ("cursor=" + "A" * 100, "cursor"),
    ("colour=red", "colour"),
])
async def test_bad_parameters_are_400(client, query, word):
    resp = await client.get(f"/api/media?{query}")
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "bad_request" and word in body["message"]


@pytest.mark.parametrize("at,media_id", [
    (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), 1),
    (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), 2147483647),
])
def test_cursor_round_trip(at, media_id):
    assert decode_cursor(encode_cursor(at, media_id)) == (at, media_id)


@pytest.mark.parametrize("text", ["", "!!!", "MTow", "MTphYmM", "OTk5OTk5OTk5OTk5OTk5OTk5OTk6MQ"])
def test_cursor_garbage(text):
    # "1:0" (id 0), "1:abc", a time far past what datetime holds: not ours.
    assert decode_cursor(text) is None


# -- at scale ----------------------------------------------------------------------

SEED_ROWS = 1_000_000


@pytest.fixture(scope="module")
def big_dsn(pg_server_dsn, template_dsn):
    import asyncio

    from tests.dbutil import admin, dsn_for
    name = f"media_big_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(pg_server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "media_tpl_'
                      f'{__import__("os").getpid()}"'))
    dsn = dsn_for(pg_server_dsn, name)
    # Test-harness seeding: a million complete (empty) files over 2,000 messages, four
    # types, six MIME types, a year of creation times; then fresh statistics.
    asyncio.run(admin(
        dsn,
        "INSERT INTO messages (id) SELECT g FROM generate_series(1, 2000) g",
        "SELECT setval('messages_id_seq', 2000)",
        # One (empty) stored content that every seeded row points at: search reads
        # only the rows.
        "INSERT INTO media_contents (id, sha256, chunk_size, state) "
        "VALUES (1, sha256(''), 3, 'stored')",
        f"""INSERT INTO media_files (message_id, file_name, original_name, mime_type,
                media_type, file_size, chunk_size, chunk_count, sha256, upload_state,
                completed_at, created_at, content_id)
            SELECT 1 + g % 2000, 'f' || g, 'f', (ARRAY['image/jpeg','image/png',
                   'video/mp4','audio/ogg','application/pdf','image/webp'])[1 + g % 6],
                   (ARRAY['image','image','video','audio','document','image'])[1 + g % 6],
                   0, 3, 0, sha256(int4send(g)), 'complete', now(),
                   timestamptz '2024-01-01' + g * interval '31 seconds', 1
              FROM generate_series(1, {SEED_ROWS}) g""",
        "ANALYZE media_files", "ANALYZE messages"))
    yield dsn
    asyncio.run(admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


CURSOR = (datetime(2024, 6, 1, tzinfo=timezone.utc), 123)
ANY_ORDER = "media_files_search_idx"     # newest first over all rows, filtered on the way
PLANS = [
    # (statement, parameters, the indexes the planner may walk for it). For a filter
    # that keeps one row in six (a media or MIME type) walking the plain newest-first
    # index and filtering is as good as the filter's own index under LIMIT: both are
    # index scans in the order asked, no sort, no sequential scan.
    ("search_media_all", {}, {ANY_ORDER}),
    ("search_media_by_type", {"media_type": "video"},
     {"media_files_search_type_idx", ANY_ORDER}),
    ("search_media_by_mime", {"mime_type": "audio/ogg", "media_type": None},
     {"media_files_search_mime_idx", ANY_ORDER}),
    ("search_media_by_message", {"message_id": 77, "media_type": None, "mime_type": None},
     {"media_files_message_idx"}),
    ("search_media_by_message", {"message_id": 77, "media_type": "image",
                                 "mime_type": "image/jpeg"}, {"media_files_message_idx"}),
]


def _indexes_used(plan: str) -> set[str]:
    import re
    return set(re.findall(r"Index (?:Only )?Scan(?: Backward)? using (\w+)", plan)
               + re.findall(r"Bitmap Index Scan on (\w+)", plan))


@pytest.mark.slow
@pytest.mark.parametrize("first_page", [True, False], ids=["first-page", "with-cursor"])
@pytest.mark.parametrize("since", [None, datetime(2024, 3, 1, tzinfo=timezone.utc)],
                         ids=["no-since", "since"])
@pytest.mark.parametrize("name,params,allowed", PLANS, ids=[f"{p[0]}-{i}" for i, p in
                                                            enumerate(PLANS)])
async def test_each_filter_is_an_index_scan_at_a_million_rows(big_dsn, name, params, allowed,
                                                              first_page, since):
    import asyncpg
    st = getattr(Q, name)
    after = (datetime.max.replace(tzinfo=timezone.utc), 0) if first_page else CURSOR
    args = st.args({**params, "since": since, "until": None, "after_at": after[0],
                    "after_id": after[1], "n": 51})
    conn = await asyncpg.connect(big_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == SEED_ROWS
        # Both plans a prepared statement may use: custom (values known) and generic.
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + st.sql, *args))
            used = _indexes_used(plan)
            assert used and used <= allowed, plan
            assert "Seq Scan" not in plan, plan
            # Rows come in index order; only a bitmap scan of one message's few rows
            # (when type filters narrow them further) may sort what it found.
            assert "Sort" not in plan or "Bitmap Index Scan on media_files_message_idx" \
                in plan, plan
        rows = await st.fetch(conn, **{**params, "since": since, "until": None,
                                       "after_at": after[0], "after_id": after[1], "n": 51})
        assert 0 < len(rows) <= 51
        assert all(r["mime_type"] == (params.get("mime_type") or r["mime_type"]) for r in rows)
        assert all(since is None or r["created_at"] >= since for r in rows)
        keys = [(r["created_at"], r["id"]) for r in rows]
        assert keys == sorted(keys, reverse=True) and keys[0] < after
    finally:
        await conn.close()
