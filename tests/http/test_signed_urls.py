"""Signed media URLs through a real server: what JSON hands out, what reading with it
answers (and caches), every way of tampering with it, expiry, key rotation, the
generated key shared by instances, public mode, and safe serving of risky types."""
from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from server.security import SIGNER
from server.security.signing import sign_media
from server.settings import SecretKeys
from tests.dbutil import fetchval
from tests.media import jpeg_bytes, png_bytes

UPLOAD = "/api/media/upload-production"
K1, K2 = b"1" * 32, b"2" * 32


async def upload(client, message_id: int, data: bytes | None = None) -> dict:
    resp = await client.post(UPLOAD, params={"message_id": str(message_id)},
                             data=data or jpeg_bytes(20_000),
                             headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def with_query(url: str, **changes) -> str:
    q = {**query(url), **changes}
    q = {k: v for k, v in q.items() if v is not None}
    return f"{urlsplit(url).path}?{urlencode(q)}"


async def test_every_json_carries_a_signed_url_that_reads_without_a_key(
        client, anon_client, message_id, settings):
    data = jpeg_bytes(20_000)
    meta = await upload(client, message_id, data)
    assert re.fullmatch(rf"/api/media/serve/{meta['id']}\?exp=[0-9]+&sig=[A-Za-z0-9_-]{{43}}",
                        meta["url"])
    exp = int(query(meta["url"])["exp"])
    ttl = settings.security.url_ttl_seconds
    assert time.time() + ttl - 5 <= exp <= time.time() + ttl + ttl // 10 + 5
    listed = await (await client.get(f"/api/messages/{message_id}/media")).json()
    single = await (await client.get(f"/api/media/{meta['id']}")).json()
    assert listed["items"][0]["url"] == single["url"] == meta["url"]   # same window

    resp = await anon_client.get(meta["url"])
    assert resp.status == 200 and await resp.read() == data
    cc = resp.headers["Cache-Control"]
    age = int(re.fullmatch(r"private, max-age=([0-9]+)", cc)[1])
    assert exp - time.time() - 5 <= age <= exp - time.time() + 1
    ranged = await anon_client.get(meta["url"], headers={"Range": "bytes=10-19"})
    assert ranged.status == 206 and await ranged.read() == data[10:20]
    assert ranged.headers["Cache-Control"] == cc
    head = await anon_client.head(meta["url"])
    assert head.status == 200 and head.headers["Cache-Control"] == cc
    again = await anon_client.get(meta["url"], headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304 and again.headers["Cache-Control"] == cc


async def test_reading_with_a_key_is_private_too(client, message_id, settings):
    meta = await upload(client, message_id)
    resp = await client.get(f"/api/media/serve/{meta['id']}")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == f"private, max-age={settings.security.url_ttl_seconds}"


async def test_no_signature_and_no_key_is_401(client, anon_client, message_id):
    meta = await upload(client, message_id)
    resp = await anon_client.get(f"/api/media/serve/{meta['id']}")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "immutable" not in resp.headers["Cache-Control"]


async def test_tampering_with_any_field_is_403(client, anon_client, message_id):
    a = await upload(client, message_id)
    b = await upload(client, message_id)
    q = query(a["url"])
    sig = q["sig"]
    tampered = {
        "other media, same signature": f"/api/media/serve/{b['id']}?exp={q['exp']}&sig={sig}",
        "exp later": with_query(a["url"], exp=str(int(q["exp"]) + 1)),
        "exp earlier": with_query(a["url"], exp=str(int(q["exp"]) - 1)),
        "exp with a leading zero": with_query(a["url"], exp="0" + q["exp"]),
        "sig changed": with_query(a["url"], sig=("B" if sig[0] == "A" else "A") + sig[1:]),
        "sig truncated": with_query(a["url"], sig=sig[:-1]),
        "sig huge": with_query(a["url"], sig="A" * 5000),
        "sig non-ascii": with_query(a["url"], sig="é" * 43),
        "variant added": with_query(a["url"], variant="preview"),
        "exp missing": with_query(a["url"], exp=None),
        "sig missing": with_query(a["url"], sig=None),
        "exp not a number": with_query(a["url"], exp="tomorrow"),
    }
    for what, url in tampered.items():
        resp = await anon_client.get(url)
        assert resp.status == 403, what
        assert (await resp.json())["error"] == "invalid_signature", what
    assert (await anon_client.get(a["url"])).status == 200


async def test_expired_link_is_403(client, anon_client, message_id):
    meta = await upload(client, message_id)
    key = client.app[SIGNER].keys[0]
    past = int(time.time()) - 1
    url = f"/api/media/serve/{meta['id']}?exp={past}&sig={sign_media(key, meta['id'], '', past)}"
    resp = await anon_client.get(url)
    assert resp.status == 403
    assert (await resp.json())["error"] == "link_expired"


async def test_a_variant_is_signed_separately(client, anon_client, message_id):
    # Variants do not exist yet: a correctly signed variant URL passes access control
    # and reaches the route, which serves the file itself.
    meta = await upload(client, message_id)
    url = client.app[SIGNER].media_url(meta["id"], "preview")
    assert query(url)["variant"] == "preview"
    assert (await anon_client.get(url)).status == 200
    assert (await anon_client.get(with_query(url, variant="m4a"))).status == 403


async def test_links_survive_key_rotation(server_for, aiohttp_client, message_id):
    async def server(*keys):
        return await server_for(security__signing_keys=SecretKeys(keys))

    old = await server(K1)
    meta = await upload(old, message_id)
    rotated = await server(K2, K1)          # new key signs, old one still verifies
    anon = await aiohttp_client(rotated.server)
    assert (await anon.get(meta["url"])).status == 200
    fresh = (await (await rotated.get(f"/api/media/{meta['id']}")).json())["url"]
    assert fresh != meta["url"]
    assert (await anon.get(fresh)).status == 200
    retired = await aiohttp_client((await server(K2)).server)   # old key dropped
    assert (await retired.get(meta["url"])).status == 403
    assert (await retired.get(fresh)).status == 200


async def test_the_generated_key_is_shared_by_every_instance(server_for, db_dsn, message_id):
    one = await server_for()
    two = await server_for(key=None)
    meta = await upload(one, message_id)
    assert (await two.get(meta["url"])).status == 200
    assert one.app[SIGNER].keys == two.app[SIGNER].keys
    assert await fetchval(db_dsn, "SELECT count(*) FROM service_secrets") == 1


async def test_public_mode_serves_unsigned_urls_with_the_long_cache(
        client_with, anon_client, aiohttp_client, message_id):
    public = await client_with(security__public_read=True)
    nobody = await aiohttp_client(public.server)
    data = png_bytes()
    resp = await public.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                             headers={"Content-Type": "image/png"})
    meta = await resp.json()
    assert meta["url"] == f"/api/media/serve/{meta['id']}"
    got = await nobody.get(meta["url"])
    assert got.status == 200 and await got.read() == data
    assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    # Only reading is public: writing and metadata still need a key.
    bare = await nobody.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                             headers={"Content-Type": "image/png"})
    assert bare.status == 401
    assert (await nobody.get(f"/api/media/{meta['id']}")).status == 401
    # Legacy URLs are open, for names that were legacy files only
    # (tests/http/test_legacy_http.py): an uploaded media's generated name is not one.
    legacy = await public.get(f"/uploads/media/{meta['file_name']}", allow_redirects=False)
    assert legacy.status == 404
    # Private mode on the same database refuses the unsigned URL.
    assert (await anon_client.get(meta["url"])).status == 401


@pytest.mark.parametrize("mime,name", [
    ("image/svg+xml", "drawing.svg"), ("text/html", "page.html"),
    ("application/xml", "data.xml"), ("application/x-unknown", "thing.bin"),
    ("application/zip", "archive.zip"),
])
async def test_risky_types_are_sandboxed_attachments(client, anon_client, store, message_id,
                                                     mime, name):
    # Such files cannot be uploaded (the type policy refuses them), but may arrive by
    # other paths (legacy imports): store one directly.
    body = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    up = await store.begin_upload(file_name=f"x-{name}", original_name=name, mime_type=mime,
                                  media_type="document")
    await up.write(body)
    rec = await up.finish(message_id)
    url = client.app[SIGNER].media_url(rec.id)
    resp = await anon_client.get(url)
    assert resp.status == 200 and await resp.read() == body
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["Content-Security-Policy"] == "sandbox"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_images_video_audio_pdf_are_inline(client, anon_client, message_id):
    meta = await upload(client, message_id)
    resp = await anon_client.get(meta["url"])
    assert resp.headers["Content-Disposition"].startswith("inline;")
    assert "Content-Security-Policy" not in resp.headers


async def test_reads_are_audited_only_when_asked(client, anon_client, client_with,
                                                 aiohttp_client, message_id, db_dsn):
    meta = await upload(client, message_id)
    assert (await anon_client.get(meta["url"])).status == 200
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_audit_log "
                                  "WHERE action = 'read'") == 0
    logging = await aiohttp_client((await client_with(security__audit_reads=True)).server)
    assert (await logging.get(meta["url"], headers={"User-Agent": "phone/1.0"})).status == 200
    # The read is recorded once the body has gone out, so the client may see the
    # response a moment before the row commits.
    for _ in range(100):
        row = await fetchval(db_dsn, "SELECT row(actor, media_id, outcome, user_agent)::text "
                                     "FROM media_audit_log WHERE action = 'read'")
        if row is not None:
            break
        await asyncio.sleep(0.02)
    assert row == f"(signed-url,{meta['id']},200,phone/1.0)"


async def test_instances_starting_together_share_the_generated_key(store, db_dsn):
    # The race two workers of one server met at start: one instance's insert of the key
    # is not committed yet when the other asks for it. The second must wait and come back
    # with the first one's key, not with nothing.
    import asyncpg
    from server.security.setup import GENERATED_KEY, signing_keys
    first = await asyncpg.connect(db_dsn)
    try:
        tx = first.transaction()
        await tx.start()
        await first.execute("INSERT INTO service_secrets (name, secret) VALUES ($1, $2)",
                            GENERATED_KEY, K1)
        waiting = asyncio.ensure_future(signing_keys(store, ()))
        await asyncio.sleep(0.3)
        assert not waiting.done()           # blocked on the uncommitted row
        await tx.commit()
        assert await asyncio.wait_for(waiting, 10) == (K1,)
    finally:
        await first.close()
    assert await fetchval(db_dsn, "SELECT count(*) FROM service_secrets") == 1
