"""Retention's purge (server/store/purge.py) seen from the HTTP side and the database:
410 media_purged on every road to a purged id, the message kept, one audit row per
batch, variants and chunks gone, tombstones gone with their message, purgers that
share the work."""
import asyncio
import os
import uuid
from datetime import timedelta

from server.retention.rules import Selection, parse_rules, selections
from server.store.media import STORE
from server.store.purge import candidates, purge, purge_batch
from tests.media import photo_bytes

YEAR = timedelta(days=365)
# The tables holding a media's own bytes: none with content-addressed storage (issue 24),
# where bytes belong to contents, which the reclaim removes (tests/database/
# test_retention_space.py).
PER_MEDIA_CHUNK_TABLES = ()


async def put(store, message_id: int, media_type: str = "video", *, days_old: int = 0,
              size: int = 5000) -> int:
    up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.bin", original_name="x.bin",
                                  mime_type="application/octet-stream", media_type=media_type)
    await up.write(os.urandom(size))
    rec = await up.finish(message_id)
    if days_old:
        async with store.connection() as conn:   # test harness: age the media
            await conn.execute("UPDATE media_files SET created_at = now() - "
                               "make_interval(days => $2) WHERE id = $1", rec.id, days_old)
    return rec.id


async def upload_photo(client, message_id: int, *, days_old: int) -> dict:
    """A real photo through the server's processing, which makes its preview variant."""
    resp = await client.post(f"/api/media/upload-production?message_id={message_id}"
                             "&filename=p.jpg", data=photo_bytes(1200, 800),
                             headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert "preview" in body["variants"]
    async with client.server.app[STORE].connection() as conn:   # test harness: age it
        await conn.execute("UPDATE media_files SET created_at = now() - "
                           "make_interval(days => $2) WHERE id = $1", body["id"], days_old)
    return body


async def count(store, sql: str, *args) -> int:
    async with store.connection() as conn:
        return await conn.fetchval(sql, *args)


async def assert_purged(resp) -> None:
    assert resp.status == 410, await resp.text()
    if resp.method != "HEAD":
        assert (await resp.json())["error"] == "media_purged"


async def test_a_purged_id_answers_410_on_every_road_and_its_message_stays(
        processing_client, aiohttp_client):
    client = processing_client
    anon = await aiohttp_client(client.server)   # no API key: signed URLs alone
    store = client.server.app[STORE]
    message = await store.create_message()
    photo = await upload_photo(client, message, days_old=400)
    old = photo["id"]
    new = await put(store, message)
    assert (await anon.get(photo["url"])).status == 200

    # Its variants' bytes count with it: the preview and the eager thumbnails.
    variant_bytes = await count(store, "SELECT sum(file_size) FROM media_variants "
                                "WHERE media_id = $1", old)
    assert variant_bytes > photo["variants"]["preview"]["file_size"]
    went = await purge(store, Selection(YEAR, label="test"), "test")
    assert (went.files, went.bytes) == (1, photo["file_size"] + variant_bytes)

    await assert_purged(await client.get(f"/api/media/serve/{old}"))
    await assert_purged(await client.head(f"/api/media/serve/{old}"))
    await assert_purged(await client.get(f"/api/media/serve/{old}?variant=preview"))
    await assert_purged(await client.get(f"/api/media/{old}"))
    await assert_purged(await anon.get(photo["url"]))
    await assert_purged(await anon.get(photo["variants"]["preview"]["url"]))
    await assert_purged(await client.delete(f"/api/media/{old}"))
    # Never there: still 404.
    assert (await client.get(f"/api/media/{new + 1000}")).status == 404
    listing = await client.get(f"/api/messages/{message}/media")
    assert listing.status == 200
    assert [m["id"] for m in (await listing.json())["items"]] == [new]
    assert (await client.get(f"/api/media/serve/{new}")).status == 200
    # Its variants went with it; where its bytes were (per media, as stored today).
    assert await count(store, "SELECT count(*) FROM media_variants WHERE media_id = $1",
                       old) == 0
    for table in PER_MEDIA_CHUNK_TABLES:
        assert await count(store, f"SELECT count(*) FROM {table} WHERE media_id = $1",
                           old) == 0, table


async def test_each_batch_is_one_audit_row_naming_its_ids(client, store, message_id):
    ids = [await put(store, message_id, days_old=400 + i) for i in range(5)]
    await purge(store, Selection(YEAR, label="rule video:365d"), "retention", batch=2)
    async with store.connection() as conn:
        rows = await conn.fetch("SELECT actor, media_ids, outcome FROM media_audit_log "
                                "WHERE action = 'purge' ORDER BY id")
    assert [len(r["media_ids"]) for r in rows] == [2, 2, 1]
    assert sorted(i for r in rows for i in r["media_ids"]) == sorted(ids)
    # Oldest first.
    assert rows[0]["media_ids"] == sorted(ids[3:])
    assert {r["actor"] for r in rows} == {"retention"}
    assert rows[0]["outcome"].startswith("ok: rule video:365d, 2 media, 10000 bytes")
    found = await (await client.get(f"/api/audit?media_id={ids[2]}&action=purge")).json()
    assert len(found["entries"]) == 1 and ids[2] in found["entries"][0]["media_ids"]


async def test_rules_by_type_and_age_and_the_star_spares_typed_types(store, message_id):
    video_200 = await put(store, message_id, "video", days_old=200)
    video_400 = await put(store, message_id, "video", days_old=400)
    audio_200 = await put(store, message_id, "audio", days_old=200)
    image_10 = await put(store, message_id, "image", days_old=10)
    rules = parse_rules("video:365d,*:100d")
    would = [await candidates(store, s) for s in selections(rules)]
    assert [(w.files, w.by_type) for w in would] == [
        (1, {"video": (1, 5000)}), (1, {"audio": (1, 5000)})]
    for sel in selections(rules):
        await purge(store, sel, "retention")
    left = await count(store, "SELECT array_agg(id ORDER BY id) FROM media_files")
    assert left == sorted([video_200, image_10])
    gone = await count(store, "SELECT array_agg(id ORDER BY id) FROM purged_media")
    assert gone == sorted([video_400, audio_200])


async def test_uploads_in_progress_are_never_taken(store):
    up = await store.begin_upload(file_name="u.bin", original_name="u.bin",
                                  mime_type="application/octet-stream", media_type="video")
    await up.write(os.urandom(10_000))
    await up.flush()
    async with store.connection() as conn:
        await conn.execute("UPDATE media_files SET created_at = now() - interval '400 days'")
    went = await purge(store, Selection(YEAR, label="test"), "test")
    assert went.files == 0
    assert await count(store, "SELECT count(*) FROM media_files") == 1


async def test_a_batch_stops_at_its_byte_budget_but_always_takes_one(store, message_id):
    for i in range(3):
        await put(store, message_id, days_old=400 + i, size=6000)
    sel = Selection(YEAR, label="test")
    assert (await purge_batch(store, sel, "t", max_bytes=1)).files == 1
    assert (await purge_batch(store, sel, "t", max_bytes=10_000)).files == 2


async def test_deleting_the_message_deletes_its_tombstones(store, message_id):
    other = await store.create_message()
    await put(store, message_id, days_old=400)
    await put(store, other, days_old=400)
    await purge(store, Selection(YEAR, label="test"), "test")
    async with store.connection() as conn:
        await conn.execute("DELETE FROM messages WHERE id = $1", message_id)
    assert await count(store, "SELECT array_agg(message_id) FROM purged_media") == [other]


async def test_purgers_at_once_share_the_work(store, pool, settings, message_id):
    from server.store.media import MediaStore
    ids = {await put(store, message_id, days_old=400, size=300) for _ in range(30)}
    other = MediaStore(pool, chunk_size=settings.store.chunk_bytes)
    sel = Selection(YEAR, label="test")
    a, b = await asyncio.gather(purge(store, sel, "a", batch=3), purge(other, sel, "b", batch=3))
    assert a.files + b.files == 30
    async with store.connection() as conn:
        audited = await conn.fetch("SELECT media_ids FROM media_audit_log WHERE action='purge'")
    listed = [i for r in audited for i in r["media_ids"]]
    assert sorted(listed) == sorted(ids)   # each id in exactly one batch


async def test_the_worker_applies_the_rules_and_counts_them(client_with):
    from server.observability.metrics import METRICS
    from server.workers.retention import retention
    client = await client_with(workers__retention=parse_rules("audio:1d,*:30d"),
                               workers__janitor_interval_seconds=1)
    app = client.server.app
    store = app[STORE]
    message = await store.create_message()
    audio_2 = await put(store, message, "audio", days_old=2)
    video_2 = await put(store, message, "video", days_old=2)
    video_40 = await put(store, message, "video", days_old=40)
    worker = asyncio.create_task(retention(app))
    try:
        for _ in range(200):
            if await count(store, "SELECT count(*) FROM purged_media") == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert await count(store, "SELECT array_agg(id ORDER BY id) FROM purged_media") == \
        sorted([audio_2, video_40])
    await assert_purged(await client.get(f"/api/media/serve/{audio_2}"))
    assert (await client.get(f"/api/media/serve/{video_2}")).status == 200
    purged = app[METRICS].purged
    assert purged.labels("audio")._value.get() == 1
    assert purged.labels("video")._value.get() == 1
    assert await count(store, "SELECT count(*) FROM media_audit_log WHERE action = 'purge' "
                              "AND actor = 'retention'") == 2


async def test_a_purged_legacy_file_is_410_and_not_imported_again(store, pool, tmp_path,
                                                                 server_for):
    from server.legacy.importer import ALREADY, IMPORTED
    from tests.legacy_util import make_chat, run_import
    chat = await make_chat(pool, tmp_path)
    report, _ = await run_import(store, chat)
    ids = {r.name: r.media_id for r in report.rows if r.outcome == IMPORTED}
    async with store.connection() as conn:   # test harness: age one of them
        await conn.execute("UPDATE media_files SET created_at = now() - interval "
                           "'400 days' WHERE id = $1", ids["a.jpg"])
    await purge(store, Selection(YEAR, label="test"), "test")

    client = await server_for(legacy__dir=chat.folder, key=None)
    resp = await client.get("/uploads/media/a.jpg", allow_redirects=False)
    await assert_purged(resp)   # though the folder still holds a.jpg
    assert (await client.get("/uploads/media/b.png", allow_redirects=False)).status == 302

    again, _ = await run_import(store, chat)
    row = next(r for r in again.rows if r.name == "a.jpg")
    assert (row.outcome, row.reason) == (ALREADY, "purged by retention")
    assert await count(store, "SELECT count(*) FROM media_files") == len(ids) - 1
