"""A tus upload's completion runs the plain upload's pipeline: the same file through tus
and through POST /api/media/upload-production comes out the same (bytes, facts,
variants); a refused file gets the same status and code and leaves nothing; the lease
covers the processing; a completion cut short by a dead instance runs again; send_to
in Upload-Metadata queues a Z-API send. Real server, real database, real media."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import uuid

import pytest
from PIL import Image

from server.errors import TusLocked
from server.processing.pipeline import PROCESSING
from server.store.media import STORE, MediaStore
from server.tus.store import TusStore
from tests.media import av_sample, exif_photo, photo_bytes, png_bomb
from tests.http.test_processing_images import created, fetch, post
from tests.zapi_util import wait_delivery, zapi_changes

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}
TABLES = ("media_files", "content_chunks", "media_variants", "media_contents",
          "tus_uploads")


def meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kw.items())


async def create(client, message_id, length, **fields) -> str:
    r = await client.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": str(length),
        "Upload-Metadata": meta(message_id=message_id, **fields)})
    assert r.status == 201, await r.text()
    return "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]


async def patch(client, url, offset, data, **extra):
    return await client.patch(url, data=data, headers={
        **TUS, **OCTET, "Upload-Offset": str(offset), **extra})


async def tus_upload(client, message_id, data, *, piece=7001, **fields):
    """Upload ``data`` in pieces (not chunk-aligned); the completing PATCH's response
    and the upload URL."""
    url = await create(client, message_id, len(data), **fields)
    offset = 0
    while True:
        r = await patch(client, url, offset, data[offset:offset + piece])
        offset = min(len(data), offset + piece)
        if offset == len(data) or r.status != 204:
            return r, url
        assert "Media-Id" not in r.headers


async def media(client, media_id) -> dict:
    r = await client.get(f"/api/media/{media_id}")
    assert r.status == 200, await r.text()
    return await r.json()


async def count(pool, table) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")   # our own table names


FACTS = ("mime_type", "media_type", "file_size", "sha256", "is_compressed",
         "compression_quality", "duration", "duration_exact", "dimensions", "waveform",
         "original_name")


async def outcome(client, body: dict) -> dict:
    """What a media came out as: its facts, its bytes' digest, its variants' digests."""
    got = {k: body.get(k) for k in FACTS}
    got["served"] = hashlib.sha256(await fetch(client, body["url"])).hexdigest()
    got["variants"] = {
        name: (v["mime_type"], v["dimensions"], v["file_size"],
               hashlib.sha256(await fetch(client, v["url"])).hexdigest())
        for name, v in body["variants"].items()}
    return got


SAMPLES = {
    "exif-jpeg": (lambda: exif_photo(120, 80, orientation=6), "phone.jpg"),
    "png": (lambda: photo_bytes(90, 60, fmt="PNG"), "shot.png"),
    "mp4": (lambda: av_sample("mp4", video="libx264", audio="aac", seconds=2.5), "clip.mp4"),
    "ogg-opus": (lambda: av_sample("ogg", audio="libopus", seconds=2.5), "voice.ogg"),
    "mp3": (lambda: av_sample("mp3", audio="libmp3lame", seconds=2.5), "song.mp3"),
}


@pytest.mark.parametrize("sample", list(SAMPLES))
async def test_same_outcome_as_a_plain_upload(processing_client, message_id, sample):
    make, name = SAMPLES[sample]
    sent = make()
    plain = await created(await post(processing_client, message_id, sent, name=name))
    r, url = await tus_upload(processing_client, message_id, sent, filename=name)
    assert r.status == 204, await r.text()
    assert r.headers["Upload-Offset"] == str(len(sent))
    media_id = int(r.headers["Media-Id"])
    assert media_id != plain["id"]
    assert r.headers["Media-Url"].startswith(f"/api/media/serve/{media_id}?")
    via_tus = await media(processing_client, media_id)
    assert await outcome(processing_client, via_tus) == await outcome(processing_client, plain)
    # what each kind must have got, so equality is not two empty answers
    if sample in ("mp4", "ogg-opus", "mp3"):
        assert abs(via_tus["duration_exact"] - 2.5) <= 0.1 and via_tus["duration"] == 3
    if sample == "mp4":
        assert via_tus["dimensions"] == {"width": 64, "height": 48}
        assert via_tus["variants"]["preview"]["mime_type"] == "image/jpeg"
    if sample == "ogg-opus":
        assert via_tus["variants"]["m4a"]["mime_type"] == "audio/mp4"
        assert len(via_tus["waveform"]) == 64
    if sample in ("exif-jpeg", "png"):
        assert "preview" in via_tus["variants"]
    # HEAD names the media from then on; the received copy is gone (one row per media)
    h = await processing_client.head(url, headers=TUS)
    assert h.status == 200 and h.headers["Media-Id"] == str(media_id)
    assert h.headers["Upload-Offset"] == h.headers["Upload-Length"] == str(len(sent))
    assert "Upload-Expires" not in h.headers
    assert h.headers["Media-Url"].startswith(f"/api/media/serve/{media_id}?")


async def test_exif_is_stripped_and_the_photo_turned_upright(processing_client, message_id):
    sent = exif_photo(120, 80, orientation=6)
    r, _ = await tus_upload(processing_client, message_id, sent, piece=1000)
    body = await media(processing_client, r.headers["Media-Id"])
    assert body["dimensions"] == {"width": 80, "height": 120}       # as displayed
    stored = await fetch(processing_client, body["url"])
    assert stored != sent and body["sha256"] == hashlib.sha256(stored).hexdigest()
    im = Image.open(io.BytesIO(stored))
    exif = im.getexif()
    assert 0x8825 not in exif and not exif.get_ifd(0x8825)      # no GPS
    assert 0x010F not in exif and "comment" not in im.info      # no camera make, comment
    assert b"PhoneMaker" not in stored and b"secret comment" not in stored
    assert (im.width, im.height) == (80, 120)


async def test_options_in_metadata_as_in_the_query(processing_client, message_id):
    sent = photo_bytes(200, 150, quality=95)
    plain = await created(await post(processing_client, message_id, sent, name="a.jpg",
                                     query="?quality=40"))
    r, _ = await tus_upload(processing_client, message_id, sent, filename="a.jpg",
                            quality="40")
    via_tus = await media(processing_client, r.headers["Media-Id"])
    assert via_tus["compression_quality"] == plain["compression_quality"] == 40
    assert via_tus["sha256"] == plain["sha256"]
    r = await processing_client.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": "10", "Upload-Metadata": meta(message_id=message_id,
                                                              quality="400")})
    assert r.status == 400 and "quality" in (await r.json())["message"]


REFUSED = {
    "png-bomb": (lambda: png_bomb(50_000), 422, "media_too_complex"),
    "truncated-jpeg": (lambda: photo_bytes(60, 40)[:-200], 422, "invalid_media"),
    "truncated-mp4": (lambda: (lambda v: v[:len(v) // 2])(
        av_sample("mp4", video="libx264", audio="aac", seconds=4)), 422, "invalid_media"),
    "exe": (lambda: b"MZ" + bytes(5000), 415, "unsupported_media_type"),
    "html-as-jpg": (lambda: b"<html><script>alert(1)</script></html>" * 50, 415,
                    "unsupported_media_type"),
}


@pytest.mark.parametrize("sample", list(REFUSED))
async def test_refused_like_a_plain_upload_and_nothing_kept(processing_client, pool,
                                                            message_id, sample):
    make, status, code = REFUSED[sample]
    sent = make()
    plain = await post(processing_client, message_id, sent, name="f.bin")
    assert plain.status == status
    plain_body = await plain.json()
    assert plain_body["error"] == code
    r, url = await tus_upload(processing_client, message_id, sent, piece=2000)
    assert r.status == status, await r.text()
    body = await r.json()
    assert body["error"] == code and body["message"] == plain_body["message"]
    assert r.headers["Tus-Resumable"] == "1.0.0" and "Media-Id" not in r.headers
    for table in TABLES:
        assert await count(pool, table) == 0, table
    # Removed, as a terminated upload: 404 from then on (no tombstone to answer 410 with)
    assert (await processing_client.head(url, headers=TUS)).status == 404
    assert (await patch(processing_client, url, len(sent), b"")).status == 404


async def test_refused_in_creation_with_upload(processing_client, pool, message_id):
    sent = png_bomb(50_000)
    r = await processing_client.post("/api/media/tus/", data=sent, headers={
        **TUS, **OCTET, "Upload-Length": str(len(sent)),
        "Upload-Metadata": meta(message_id=message_id)})
    assert r.status == 422 and (await r.json())["error"] == "media_too_complex"
    for table in TABLES:
        assert await count(pool, table) == 0, table


async def test_per_type_limit_at_completion(processing_client_with, pool, message_id):
    client = await processing_client_with(processing__max_image_bytes=2000)
    sent = photo_bytes(120, 80)
    assert len(sent) > 2000
    plain = await post(client, message_id, sent)
    r, _ = await tus_upload(client, message_id, sent, piece=1500)
    assert r.status == plain.status == 413
    assert (await r.json())["message"] == (await plain.json())["message"]
    for table in TABLES:
        assert await count(pool, table) == 0, table


# -- the lease during processing ------------------------------------------------------

def gate_processing(gate: dict):
    """A setup that holds every processing step until the test says so (``reached``
    is set once one is waiting; ``release`` lets it go): the work is real, only its
    start is held, so the test knows the completion is in progress."""
    gate.update(reached=asyncio.Event(), release=asyncio.Event())

    def setup(app):
        async def wrap(app):
            processing = app[PROCESSING]
            run = processing.run

            async def held_run(fn, *args):
                gate["reached"].set()
                await gate["release"].wait()
                return await run(fn, *args)
            processing.run = held_run
        app.on_startup.append(wrap)
    return setup


async def test_requests_during_processing_get_423(server_for, message_id, pool):
    gate: dict = {}
    client = await server_for(setup=gate_processing(gate), processing__image_compress=True,
                              processing__keep_image_metadata=False, tus__lease_seconds=1)
    sent = exif_photo()
    url = await create(client, message_id, len(sent))
    assert (await patch(client, url, 0, sent[:3000])).status == 204
    completing = asyncio.ensure_future(patch(client, url, 3000, sent[3000:]))
    await asyncio.wait_for(gate["reached"].wait(), 60)
    # Held for three lease periods: the lease is renewed, nobody else gets in.
    for _ in range(6):
        h = await client.head(url, headers=TUS)
        assert h.status == 423 and h.headers["Tus-Resumable"] == "1.0.0"
        assert (await patch(client, url, len(sent), b"")).status == 423
        assert (await patch(client, url, 3000, sent[3000:])).status == 409   # all in
        assert (await client.delete(url, headers=TUS)).status == 423
        await asyncio.sleep(0.5)
    assert not completing.done()
    assert await count(pool, "media_files") == 1   # the received copy; nothing visible
    gate["release"].set()
    r = await completing
    assert r.status == 204, await r.text()
    h = await client.head(url, headers=TUS)
    assert h.status == 200 and h.headers["Media-Id"] == r.headers["Media-Id"]
    assert await count(pool, "media_files") == 1
    assert (await patch(client, url, len(sent), b"")).status == 409   # complete: no more


async def test_instance_dead_mid_processing(processing_client_with, message_id, pool,
                                            settings):
    """What a SIGKILL mid-processing leaves: every byte stored, a lease nobody renews,
    and the dead instance's half-made media (invisible). Once the lease runs out
    (MEDIA_TUS_LEASE_SECONDS), the next HEAD completes the upload; the half-made media
    goes with the dead instance's other uploads."""
    client = await processing_client_with(tus__lease_seconds=1)
    sent = exif_photo()
    plain = await created(await post(client, message_id, sent, name="p.jpg"))
    url = await create(client, message_id, len(sent), filename="p.jpg")
    assert (await patch(client, url, 0, sent[:5000])).status == 204
    dead = MediaStore(pool, chunk_size=settings.store.chunk_bytes, instance_id=uuid.uuid4())
    tus = TusStore(dead, lease_seconds=1)
    state = await tus.get(uuid.UUID(url.rsplit("/", 1)[1]))
    lock_id = await tus.lock(state.id)
    writer = tus.writer(state, lock_id)
    await writer.write(sent[5000:])
    await writer.last()
    half = await dead.begin_upload(file_name="x.jpg", original_name="p.jpg",
                                   mime_type="image/jpeg", media_type="image")
    await half.write(sent[:4000])
    await half.flush()
    # The lease is still live: the upload is being processed as far as anyone knows.
    h = await client.head(url, headers=TUS)
    assert h.status == 423
    for _ in range(100):
        h = await client.head(url, headers=TUS)
        if h.status != 423:
            break
        await asyncio.sleep(0.1)
    assert h.status == 200, await h.text()
    media_id = h.headers["Media-Id"]
    assert h.headers["Upload-Offset"] == str(len(sent))
    body = await media(client, media_id)
    assert body["sha256"] == plain["sha256"] and body["dimensions"] == plain["dimensions"]
    async with pool.acquire() as conn:
        states = sorted(await conn.fetchval(
            "SELECT array_agg(upload_state::text) FROM media_files"))
    assert states == ["complete", "complete", "uploading"]   # plain, tus, the half-made
    assert await dead.reclaim_dead_instance_uploads(0) == 1
    assert await count(pool, "media_files") == 2
    h2 = await client.head(url, headers=TUS)
    assert h2.status == 200 and h2.headers["Media-Id"] == media_id   # once, and stays
    # The dead request's lease is long gone: its writes would be refused.
    with pytest.raises(TusLocked):
        await writer.save(release=True)


async def test_empty_patch_at_the_end_completes_a_cut_short_upload(client, message_id,
                                                                   store):
    from tests.media import jpeg_bytes
    sent = jpeg_bytes(9000)
    client_app = client.server.app
    url = await create(client, message_id, len(sent))
    tus = TusStore(client_app[STORE], lease_seconds=1)
    state = await tus.get(uuid.UUID(url.rsplit("/", 1)[1]))
    lock_id = await tus.lock(state.id)
    writer = tus.writer(state, lock_id)
    await writer.write(sent)
    await writer.last()
    await tus.unlock(state.id, lock_id)   # as a completion that failed on the database
    r = await patch(client, url, len(sent), b"")
    assert r.status == 204 and r.headers["Media-Id"]
    assert await fetch(client, r.headers["Media-Url"]) == sent


# -- settings ------------------------------------------------------------------------

async def test_checksum_bound_is_a_setting(client_with, message_id):
    client = await client_with(tus__checksum_max_bytes=1000)
    from tests.media import jpeg_bytes
    data = jpeg_bytes(3000)
    url = await create(client, message_id, len(data))

    def checksum(b):
        return {"Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(b).digest()).decode()}

    r = await patch(client, url, 0, data[:1001], **checksum(data[:1001]))
    assert r.status == 413 and "MEDIA_TUS_CHECKSUM_MAX_BYTES" in (await r.json())["message"]

    async def chunked():   # no Content-Length: refused while reading
        for i in range(0, 1500, 500):
            yield data[i:i + 500]
    r = await client.patch(url, data=chunked(), headers={
        **TUS, **OCTET, "Upload-Offset": "0", **checksum(data[:1500])})
    assert r.status == 413
    assert (await client.head(url, headers=TUS)).headers["Upload-Offset"] == "0"
    r = await patch(client, url, 0, data[:1000], **checksum(data[:1000]))
    assert r.status == 204
    r = await patch(client, url, 1000, data[1000:])   # unchecksummed: no such bound
    assert r.status == 204 and r.headers["Media-Id"]


# -- send_to -------------------------------------------------------------------------

async def test_send_to_in_metadata_queues_a_send(server_for, fake, message_id):
    client = await server_for(**zapi_changes(fake.server.port, processing__enabled=True,
                                             processing__image_compress=True,
                                             processing__keep_image_metadata=False))
    sent = exif_photo()
    r, _ = await tus_upload(client, message_id, sent, filename="p.jpg",
                            send_to="5511999999999", caption="via tus, olá")
    assert r.status == 204, await r.text()
    delivery = await wait_delivery(client, int(r.headers["Delivery-Id"]))
    assert delivery["state"] == "sent" and delivery["media_id"] == int(r.headers["Media-Id"])
    [got] = fake.received
    assert got.body["caption"] == "via tus, olá" and got.body["phone"] == "5511999999999"
    stored = await fetch(client, r.headers["Media-Url"])
    assert got.media_bytes()[1] == stored != sent     # what was stored: stripped


async def test_bad_send_to_is_refused_at_creation(server_for, fake, client, message_id,
                                                  pool):
    zapi = await server_for(**zapi_changes(fake.server.port))
    r = await zapi.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": "100",
        "Upload-Metadata": meta(message_id=message_id, send_to="+55 11 9999")})
    assert r.status == 400 and (await r.json())["error"] == "invalid_phone"
    r = await client.post("/api/media/tus/", headers={   # sending is off there
        **TUS, "Upload-Length": "100",
        "Upload-Metadata": meta(message_id=message_id, send_to="5511999999999")})
    assert r.status == 503 and (await r.json())["error"] == "zapi_disabled"
    assert await count(pool, "tus_uploads") == 0


async def test_no_send_to_no_delivery(server_for, fake, message_id):
    client = await server_for(**zapi_changes(fake.server.port))
    from tests.media import jpeg_bytes
    r, _ = await tus_upload(client, message_id, jpeg_bytes(5000))
    assert r.status == 204 and r.headers["Media-Id"] and "Delivery-Id" not in r.headers
    assert fake.received == []
