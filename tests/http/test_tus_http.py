"""tus 1.0 at /api/media/tus/, rule by rule, over real HTTP against a real database."""
import asyncio
import base64
import hashlib

import asyncpg
import pytest

from tests.media import jpeg_bytes

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kw.items())


async def create(client, message_id, length, **extra):
    headers = {**TUS, "Upload-Metadata": meta(message_id=message_id, filename="a.jpg")}
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    headers.update(extra)
    r = await client.post("/api/media/tus/", headers=headers)
    assert r.status == 201, await r.text()
    loc = r.headers["Location"]
    assert loc.startswith("http://") and "/api/media/tus/" in loc
    return "/api/media/tus/" + loc.rsplit("/", 1)[1]


async def patch(client, url, offset, data, **extra):
    return await client.patch(url, data=data, headers={
        **TUS, **OCTET, "Upload-Offset": str(offset), **extra})


async def head(client, url):
    return await client.head(url, headers=TUS)


async def test_options_capabilities(client):
    r = await client.options("/api/media/tus/")
    assert r.status == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    ext = r.headers["Tus-Extension"].split(",")
    for e in ("creation", "creation-with-upload", "creation-defer-length", "termination",
              "checksum", "expiration"):
        assert e in ext
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"
    assert int(r.headers["Tus-Max-Size"]) == 64 * 1024**2


async def test_upload_in_pieces_then_serve(client, message_id):
    data = jpeg_bytes(20_000)
    url = await create(client, message_id, len(data))
    r = await head(client, url)
    assert r.status == 200 and r.headers["Upload-Offset"] == "0"
    assert r.headers["Upload-Length"] == str(len(data))
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert "message_id" in r.headers["Upload-Metadata"] and "Upload-Expires" in r.headers
    offset = 0
    for size in (1000, 5000, 1, 3073, 7000):   # not chunk-aligned on purpose
        r = await patch(client, url, offset, data[offset:offset + size])
        assert r.status == 204, await r.text()
        offset += size
        assert r.headers["Upload-Offset"] == str(offset)
        assert "Media-Id" not in r.headers
        assert (await head(client, url)).headers["Upload-Offset"] == str(offset)
    r = await patch(client, url, offset, data[offset:])
    assert r.status == 204
    media_id = r.headers["Media-Id"]
    media_url = r.headers["Media-Url"]
    assert media_url and media_id
    r = await head(client, url)
    assert r.headers["Media-Id"] == media_id and r.headers["Upload-Offset"] == str(len(data))
    j = await (await client.get(f"/api/media/{media_id}")).json()
    assert j["media_type"] == "image" and j["original_name"] == "a.jpg"
    body = await (await client.get(f"/api/media/serve/{media_id}")).read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


async def test_a_completed_upload_writes_its_chunks_once(client, message_id, db_dsn):
    # Every chunk row ever inserted is counted (a test-only trigger): a tus upload whose
    # bytes processing keeps becomes its media by pointing at the content its PATCHes
    # filled: one chunk row written per chunk of the file (it was two: the PATCHes' and
    # the completed file's, read back and written again).
    from tests.dbutil import admin
    await admin(db_dsn, "CREATE TABLE test_chunk_inserts (n bigint)",
                "CREATE FUNCTION test_count_chunk() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO test_chunk_inserts VALUES (NEW.content_id); RETURN NULL; END $$",
                "CREATE TRIGGER test_count AFTER INSERT ON content_chunks "
                "FOR EACH ROW EXECUTE FUNCTION test_count_chunk()")
    data = jpeg_bytes(20_000)
    url = await create(client, message_id, len(data))
    r = await patch(client, url, 0, data[:9000])
    r = await patch(client, url, 9000, data[9000:])
    assert r.status == 204 and r.headers["Media-Id"]
    body = await (await client.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data
    conn = await asyncpg.connect(db_dsn)
    try:
        media = await conn.fetchrow("SELECT chunk_count, content_id FROM media_files "
                                    "WHERE id = $1", int(r.headers["Media-Id"]))
        # Besides the media's, only its variants' (its preview and eager thumbnails,
        # small: a chunk or so each), each once.
        written = await conn.fetchval("SELECT count(*) FROM test_chunk_inserts "
                                      "WHERE n <> $1", media["content_id"])
        variant_chunks = await conn.fetchval(
            "SELECT sum(chunk_count) FROM media_variants WHERE media_id = $1",
            int(r.headers["Media-Id"]))
        stored = await conn.fetchval("SELECT count(*) FROM test_chunk_inserts "
                                     "WHERE n = $1", media["content_id"])
    finally:
        await conn.close()
    assert media["chunk_count"] == -(-len(data) // (3 * 1024)) == stored
    assert written == variant_chunks


async def test_creation_with_upload(client, message_id):
    data = jpeg_bytes(5000)
    r = await client.post("/api/media/tus/", data=data, headers={
        **TUS, **OCTET, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(message_id=message_id)})
    assert r.status == 201 and r.headers["Upload-Offset"] == str(len(data))
    assert r.headers["Location"] and r.headers["Media-Id"]
    body = await (await client.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data


async def test_defer_length(client, message_id):
    data = jpeg_bytes(8000)
    url = await create(client, message_id, None)
    r = await head(client, url)
    assert r.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in r.headers
    assert (await patch(client, url, 0, data[:4000])).status == 204
    r = await patch(client, url, 4000, data[4000:], **{"Upload-Length": str(len(data))})
    assert r.status == 204 and r.headers["Media-Id"]
    assert (await head(client, url)).headers["Upload-Length"] == str(len(data))


async def test_offset_mismatch_409(client, message_id):
    url = await create(client, message_id, 100)
    assert (await patch(client, url, 0, b"x" * 10)).status == 204
    r = await patch(client, url, 5, b"y" * 10)
    assert r.status == 409 and r.headers["Upload-Offset"] == "10"
    assert (await r.json())["error"] == "offset_mismatch"
    assert (await head(client, url)).headers["Upload-Offset"] == "10"


async def test_wrong_content_type_415(client, message_id):
    url = await create(client, message_id, 100)
    r = await client.patch(url, data=b"abc", headers={
        **TUS, "Content-Type": "application/octet-stream", "Upload-Offset": "0"})
    assert r.status == 415 and r.headers["Tus-Resumable"] == "1.0.0"


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
async def test_unsupported_version_412(client, message_id, version):
    headers = {"Upload-Length": "10", "Upload-Metadata": meta(message_id=message_id)}
    if version:
        headers["Tus-Resumable"] = version
    r = await client.post("/api/media/tus/", headers=headers)
    assert r.status == 412 and r.headers["Tus-Version"] == "1.0.0"


async def test_checksum(client, message_id):
    data = jpeg_bytes(6000)
    url = await create(client, message_id, len(data))
    piece = data[:3500]
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    r = await patch(client, url, 0, piece, **{"Upload-Checksum": f"sha1 {wrong}"})
    assert r.status == 460 and (await r.json())["error"] == "checksum_mismatch"
    assert (await head(client, url)).headers["Upload-Offset"] == "0"
    good = base64.b64encode(hashlib.sha1(piece).digest()).decode()
    r = await patch(client, url, 0, piece, **{"Upload-Checksum": f"sha1 {good}"})
    assert r.status == 204 and r.headers["Upload-Offset"] == "3500"
    rest = data[3500:]
    good = base64.b64encode(hashlib.sha256(rest).digest()).decode()
    r = await patch(client, url, 3500, rest, **{"Upload-Checksum": f"sha256 {good}"})
    assert r.status == 204 and r.headers["Media-Id"]
    r = await patch(client, await create(client, message_id, 10), 0, b"x",
                    **{"Upload-Checksum": "md5 AAAA"})
    assert r.status == 400


async def test_checksum_mismatch_keeps_the_offset_and_no_chunk(client, message_id, store):
    # Bigger than several chunks: a checksummed PATCH stores its chunks as they come,
    # past the offset, and drops them when the checksum does not match.
    data = jpeg_bytes(40_000)
    url = await create(client, message_id, len(data))
    assert (await patch(client, url, 0, data[:1000])).status == 204   # leaves a tail

    async def stored():
        async with store.connection() as conn:
            return await conn.fetchrow(
                "SELECT f.chunk_count, f.file_size, octet_length(t.tail) AS tail,"
                "       (SELECT count(*) FROM content_chunks c WHERE c.content_id = f.content_id) AS rows"
                "  FROM tus_uploads t JOIN media_files f ON f.id = t.media_id")

    before = await stored()
    piece = data[1000:30_000]
    wrong = base64.b64encode(hashlib.sha1(piece + b"!").digest()).decode()
    r = await patch(client, url, 1000, piece, **{"Upload-Checksum": f"sha1 {wrong}"})
    assert r.status == 460, await r.text()
    assert (await head(client, url)).headers["Upload-Offset"] == "1000"
    after = await stored()
    assert after == before and after["rows"] == after["chunk_count"]
    assert after["file_size"] + after["tail"] == 1000
    good = base64.b64encode(hashlib.sha1(piece).digest()).decode()
    r = await patch(client, url, 1000, piece, **{"Upload-Checksum": f"sha1 {good}"})
    assert r.status == 204 and r.headers["Upload-Offset"] == "30000"
    r = await patch(client, url, 30_000, data[30_000:])
    assert r.status == 204 and r.headers["Media-Id"]
    body = await (await client.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data


async def test_termination(client, message_id, store):
    url = await create(client, message_id, 10_000)
    assert (await patch(client, url, 0, jpeg_bytes(10_000)[:7000])).status == 204
    r = await client.delete(url, headers=TUS)
    assert r.status == 204
    assert (await head(client, url)).status == 404
    assert (await patch(client, url, 7000, b"x")).status == 404
    async with store.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0
        assert await conn.fetchval("SELECT count(*) FROM content_chunks") == 0


async def test_method_override(client, message_id):
    data = jpeg_bytes(4000)
    url = await create(client, message_id, len(data))
    r = await client.post(url, data=data, headers={
        **TUS, **OCTET, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})
    assert r.status == 204 and r.headers["Media-Id"]
    url = await create(client, message_id, 10)
    r = await client.post(url, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert r.status == 204
    assert (await head(client, url)).status == 404
    r = await client.post(url, headers={**TUS, "X-HTTP-Method-Override": "GET"})
    assert r.status == 400


async def test_expiry_and_janitor(client_with, message_id, store):
    client = await client_with(tus__expiry_seconds=1)
    url = await create(client, message_id, 100)
    r = await patch(client, url, 0, b"x" * 10)
    assert r.status == 204 and r.headers["Upload-Expires"].endswith("GMT")
    await asyncio.sleep(1.2)
    r = await head(client, url)
    assert r.status == 410
    from server.tus.store import reclaim_expired_tus   # the janitor's hook
    assert await reclaim_expired_tus(client.server.app) == 1
    assert (await head(client, url)).status == 404
    # and plain stale-upload reclaiming leaves live tus uploads alone
    url = await create(client, message_id, 100)
    assert await store.reclaim_stale_uploads(0) == 0
    assert (await head(client, url)).status == 200


@pytest.mark.parametrize("headers,status", [
    ({"Upload-Length": "-1"}, 400), ({"Upload-Length": "abc"}, 400),
    ({"Upload-Length": str(10**30)}, 400), ({"Upload-Length": str(2**40)}, 413),
    ({}, 400), ({"Upload-Length": "10", "Upload-Defer-Length": "1"}, 400),
    ({"Upload-Length": "0"}, 400),
    ({"Upload-Length": "10", "Upload-Metadata": "message_id !!!"}, 400),
    ({"Upload-Length": "10", "Upload-Metadata": "message_id MQ==,message_id Mg=="}, 400),
    ({"Upload-Length": "10", "Upload-Metadata": ",".join(f"k{i} YQ==" for i in range(500))},
     400),
    ({"Upload-Length": "10", "Upload-Metadata": ""}, 400),   # no message_id
    ({"Upload-Length": "10", "Upload-Metadata": meta(message_id="abc")}, 400),
    ({"Upload-Length": "10", "Upload-Metadata": meta(message_id=999999)}, 404),
])
async def test_bad_creation(client, message_id, headers, status):
    r = await client.post("/api/media/tus/", headers={**TUS, **headers})
    assert r.status == status, await r.text()
    assert "error" in await r.json()


async def test_bad_patches(client, message_id):
    url = await create(client, message_id, 10)
    for offset in ("-1", "x", str(10**30), ""):
        r = await client.patch(url, data=b"a", headers={**TUS, **OCTET, "Upload-Offset": offset})
        assert r.status == 400, offset
    r = await client.patch(url, data=b"a", headers={**TUS, **OCTET})
    assert r.status == 400
    r = await patch(client, url, 0, b"a" * 11)
    assert r.status == 413
    assert (await head(client, url)).headers["Upload-Offset"] == "0"
    r = await patch(client, "/api/media/tus/not-a-uuid", 0, b"a")
    assert r.status == 404
    r = await patch(client, "/api/media/tus/00000000-0000-0000-0000-000000000000", 0, b"a")
    assert r.status == 404


async def test_refused_type_keeps_nothing(client, message_id, store):
    data = b"MZ" + bytes(5000)   # not an accepted type
    url = await create(client, message_id, len(data))
    r = await patch(client, url, 0, data)
    assert r.status == 415 and (await r.json())["error"] == "unsupported_media_type"
    async with store.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM media_files") == 0


async def test_auth_and_creator(client, message_id, client_as, anon_client):
    url = await create(client, message_id, 100)
    r = await anon_client.head(url, headers=TUS)
    assert r.status == 401 and r.headers["Tus-Resumable"] == "1.0.0"   # middleware's too
    reader = await client_as("read")
    r = await reader.patch(url, data=b"a", headers={**TUS, **OCTET, "Upload-Offset": "0"})
    assert r.status == 403 and r.headers["Tus-Resumable"] == "1.0.0"   # scope: first
    # Another key, even with every scope, is told nothing: 404, as for an unknown upload
    # (its URL may have leaked; a tus client answered 404 starts an upload of its own).
    for other in (await client_as("write"), await client_as("admin")):
        r = await other.head(url, headers=TUS)
        assert r.status == 404 and r.headers["Tus-Resumable"] == "1.0.0"
        r = await other.patch(url, data=b"a", headers={**TUS, **OCTET, "Upload-Offset": "0"})
        assert r.status == 404 and (await r.json())["error"] == "upload_not_found"
        assert (await other.delete(url, headers=TUS)).status == 404
        r = await other.post(url, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
        assert r.status == 404
    r = await head(client, url)   # untouched, still the creator's
    assert r.status == 200 and r.headers["Upload-Offset"] == "0"
    r = await anon_client.options("/api/media/tus/")
    assert r.status == 204   # capabilities need no credential


async def test_creator_is_the_key_not_its_name(client, message_id, db_dsn, aiohttp_client,
                                               store):
    # A key revoked and a new one made under the same name: the name matches, the key
    # does not.
    from tests.dbutil import create_api_key
    first = await create_api_key(db_dsn, "write", "phone-app")
    c1 = await aiohttp_client(client.server, headers={"Authorization": f"Bearer {first}"})
    url = await create(c1, message_id, 100)
    assert (await patch(c1, url, 0, b"x" * 10)).status == 204
    async with store.connection() as conn:
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = 'phone-app'")
    second = await create_api_key(db_dsn, "write", "phone-app")
    c2 = await aiohttp_client(client.server, headers={"Authorization": f"Bearer {second}"})
    assert (await head(c2, url)).status == 404
    assert (await patch(c2, url, 10, b"y")).status == 404
    async with store.connection() as conn:
        creator, identity = await conn.fetchrow(
            "SELECT creator, creator_identity FROM tus_uploads")
        first_id = await conn.fetchval(
            "SELECT id FROM api_keys WHERE name = 'phone-app' AND revoked_at IS NOT NULL")
    assert (creator, identity) == ("phone-app", f"key:{first_id}")


async def test_two_tokens_for_one_message(client, message_id, anon_client):
    async def token(max_bytes):
        r = await client.post("/api/media/upload-tokens",
                              json={"message_id": message_id, "max_bytes": max_bytes})
        assert r.status in (200, 201), await r.text()
        return {"Authorization": f"Bearer {(await r.json())['token']}"}

    a, b = await token(50_000), await token(50_001)
    assert a != b
    data = jpeg_bytes(9000)
    r = await anon_client.post("/api/media/tus/", headers={
        **TUS, **a, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(message_id=message_id)})
    assert r.status == 201
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    r = await anon_client.patch(url, data=data[:4000], headers={
        **TUS, **OCTET, **a, "Upload-Offset": "0"})
    assert r.status == 204
    # The same message, the same name (token:<message>), another token: not its upload.
    r = await anon_client.head(url, headers={**TUS, **b})
    assert r.status == 404
    r = await anon_client.patch(url, data=data[4000:], headers={
        **TUS, **OCTET, **b, "Upload-Offset": "4000"})
    assert r.status == 404
    assert (await anon_client.delete(url, headers={**TUS, **b})).status == 404
    # ...and the creator's token goes on as if nothing happened.
    r = await anon_client.patch(url, data=data[4000:], headers={
        **TUS, **OCTET, **a, "Upload-Offset": "4000"})
    assert r.status == 204 and r.headers["Media-Id"]


async def test_upload_token(client, message_id, anon_client, store):
    r = await client.post("/api/media/upload-tokens",
                          json={"message_id": message_id, "max_bytes": 9000})
    assert r.status in (200, 201), await r.text()
    token = (await r.json())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    r = await anon_client.post("/api/media/tus/", headers={
        **TUS, **auth, "Upload-Length": "9001", "Upload-Metadata": meta(message_id=message_id)})
    assert r.status == 413
    other = await store.create_message()
    r = await anon_client.post("/api/media/tus/", headers={
        **TUS, **auth, "Upload-Length": "100", "Upload-Metadata": meta(message_id=other)})
    assert r.status == 403
    data = jpeg_bytes(9000)
    r = await anon_client.post("/api/media/tus/", headers={
        **TUS, **auth, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(message_id=message_id)})
    assert r.status == 201
    url = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
    r = await anon_client.patch(url, data=data, headers={
        **TUS, **OCTET, **auth, "Upload-Offset": "0"})
    assert r.status == 204 and r.headers["Media-Id"]
    # the admin key did not create it
    assert (await head(client, url)).status == 404


async def test_concurrent_patches_one_wins(client, message_id):
    data = jpeg_bytes(200_000)
    url = await create(client, message_id, len(data))

    async def slow_body():
        for i in range(0, 100_000, 10_000):
            yield data[i:i + 10_000]
            await asyncio.sleep(0.05)

    first = asyncio.ensure_future(client.patch(url, data=slow_body(), headers={
        **TUS, **OCTET, "Upload-Offset": "0"}))
    await asyncio.sleep(0.15)
    r = await patch(client, url, 0, data[:100_000])
    assert r.status in (409, 423)
    r1 = await first
    assert r1.status == 204 and r1.headers["Upload-Offset"] == "100000"
    r = await patch(client, url, 100_000, data[100_000:])
    assert r.status == 204
    body = await (await client.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data


async def test_cors_exposes_tus_headers(client_with, message_id):
    client = await client_with(security__cors_origins=("https://app.example",))
    r = await client.options("/api/media/tus/", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "tus-resumable,upload-length"})
    assert r.status == 204
    assert "Upload-Length" in r.headers["Access-Control-Allow-Headers"]
    url = await create(client, message_id, 10, Origin="https://app.example")
    r = await client.head(url, headers={**TUS, "Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = {v.strip() for v in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Upload-Offset", "Upload-Length", "Upload-Expires", "Location", "Media-Id",
            "Media-Url", "Delivery-Id", "Tus-Resumable", "Tus-Checksum-Algorithm",
            "Retry-After"} <= exposed
    # errors too: a browser reads the right offset from a 409
    r = await client.patch(url, data=b"x", headers={
        **TUS, **OCTET, "Upload-Offset": "5", "Origin": "https://app.example"})
    assert r.status == 409 and r.headers["Upload-Offset"] == "0"
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Upload-Offset" in r.headers["Access-Control-Expose-Headers"]


async def test_patch_cut_off_keeps_what_arrived(client, message_id):
    data = jpeg_bytes(20_000)
    url = await create(client, message_id, len(data))
    host, port = client.server.host, client.server.port
    auth = client.session.headers["Authorization"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"PATCH {url} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
                  f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                  f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n").encode())
    writer.write(data[:7001])   # neither chunk- (3072) nor base64-aligned
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    for _ in range(50):   # the server notices the drop and stores what arrived
        r = await head(client, url)
        if r.headers["Upload-Offset"] == "7001":
            break
        await asyncio.sleep(0.1)
    assert r.headers["Upload-Offset"] == "7001"
    for _ in range(50):   # 423 until the first request has let go, as clients retry
        r = await patch(client, url, 7001, data[7001:])
        if r.status != 423:
            break
        await asyncio.sleep(0.1)
    assert r.status == 204, await r.text()
    body = await (await client.get(f"/api/media/serve/{r.headers['Media-Id']}")).read()
    assert body == data


async def test_message_deleted_before_completion(client, message_id, store):
    data = jpeg_bytes(5000)
    url = await create(client, message_id, len(data))
    assert (await patch(client, url, 0, data[:1000])).status == 204
    async with store.connection() as conn:
        await conn.execute("DELETE FROM messages WHERE id = $1", message_id)
    r = await patch(client, url, 1000, data[1000:])
    assert r.status == 404 and (await r.json())["error"] == "message_not_found"


@pytest.mark.parametrize("trusted,proto,host,expected", [
    (True, "https", "media.example.com", "https://media.example.com/api/media/tus/"),
    (True, "https", "media.example.com:8443, inner", "https://media.example.com:8443/"),
    (True, "javascript", "evil.example/x", None),      # garbage: the request's own
    (False, "https", "media.example.com", None),       # a client's claim is not believed
])
async def test_location_behind_a_proxy(client_with, message_id, trusted, proto, host,
                                       expected):
    import ipaddress
    proxies = (ipaddress.ip_network("127.0.0.0/8"),) if trusted else ()
    client = await client_with(security__trusted_proxies=proxies)
    r = await client.post("/api/media/tus/", headers={
        **TUS, "Upload-Length": "10", "Upload-Metadata": meta(message_id=message_id),
        "X-Forwarded-Proto": proto, "X-Forwarded-Host": host})
    assert r.status == 201
    loc = r.headers["Location"]
    own = f"http://{client.server.host}:{client.server.port}/api/media/tus/"
    assert loc.startswith(expected or own), loc
    # wherever it points, it names this upload: the path part works here
    path = "/api/media/tus/" + loc.rsplit("/", 1)[1]
    assert (await client.head(path, headers=TUS)).status == 200


async def _open_patch(client, url, offset, length, first: bytes):
    """A PATCH whose body is still coming: headers and ``first``, then nothing."""
    host, port = client.server.host, client.server.port
    auth = client.session.headers["Authorization"]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"PATCH {url} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
                  f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
                  f"Upload-Offset: {offset}\r\nContent-Length: {length}\r\n\r\n").encode()
                 + first)
    await writer.drain()
    return reader, writer


async def test_patches_take_upload_slots(client_with, message_id, store):
    client = await client_with(uploads__max_concurrent=1)
    data = jpeg_bytes(20_000)
    a, b = await create(client, message_id, len(data)), await create(client, message_id, 10)
    reader, writer = await _open_patch(client, a, 0, len(data), data[:5000])
    for _ in range(50):   # until the first PATCH is in
        r = await patch(client, b, 0, b"x" * 10)
        if r.status == 503:
            break
        await asyncio.sleep(0.05)
    assert r.status == 503 and (await r.json())["error"] == "too_many_uploads"
    async with store.connection() as conn:
        uploads = await conn.fetchval("SELECT count(*) FROM tus_uploads")
    r = await client.post("/api/media/tus/", data=data, headers={
        **TUS, **OCTET, "Upload-Length": str(len(data)),
        "Upload-Metadata": meta(message_id=message_id)})
    assert r.status == 503 and (await r.json())["error"] == "too_many_uploads"
    async with store.connection() as conn:   # a refused creation-with-upload made nothing
        assert await conn.fetchval("SELECT count(*) FROM tus_uploads") == uploads
    writer.close()
    for _ in range(50):   # the slot comes back when the first PATCH ends
        r = await patch(client, b, 0, b"x" * 10)
        if r.status != 503 and r.status != 423:
            break
        await asyncio.sleep(0.05)
    assert r.status == 204


async def test_shutdown_stops_a_patch_in_progress(client, message_id):
    data = jpeg_bytes(20_000)
    url = await create(client, message_id, len(data))
    reader, writer = await _open_patch(client, url, 0, len(data), data[:7001])
    for _ in range(200):   # until both its full chunks are in (the rest waits in memory)
        r = await head(client, url)
        if r.headers["Upload-Offset"] == "6144":
            break
        await asyncio.sleep(0.05)
    assert r.headers["Upload-Offset"] == "6144"
    # What a SIGTERM runs before it waits for the requests in flight.
    await client.app.shutdown()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503") and b'"unavailable"' in answer
    r = await head(client, url)
    assert r.status == 200 and r.headers["Upload-Offset"] == "7001"   # kept what came


async def test_refusals_are_audited_as_the_plain_uploads(client, message_id, anon_client,
                                                         client_as, store):
    async def audit_rows():
        async with store.connection() as conn:
            rows = await conn.fetch("SELECT actor, action, message_id, outcome"
                                    "  FROM media_audit_log ORDER BY id")
        return [tuple(r) for r in rows]

    r = await client.post("/api/media/upload-tokens",
                          json={"message_id": message_id, "max_bytes": 9000})
    auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
    other = await store.create_message()
    before = await audit_rows()
    # A token for another message: the plain upload's refusal, then tus's.
    r = await anon_client.post(f"/api/media/upload-production?message_id={other}",
                               data=b"x", headers={**auth, "Content-Type": "image/jpeg"})
    assert r.status == 403
    r = await anon_client.post("/api/media/tus/", headers={
        **TUS, **auth, "Upload-Length": "100", "Upload-Metadata": meta(message_id=other)})
    assert r.status == 403
    rows = (await audit_rows())[len(before):]
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[1][1:] == ("upload", other, "token_wrong_message")
    # Another principal is told 404 for someone's upload, and it is written down.
    url = await create(client, message_id, 100)
    stranger = await client_as("write")
    assert (await stranger.head(url, headers=TUS)).status == 404
    r = await stranger.patch(url, data=b"a", headers={**TUS, **OCTET, "Upload-Offset": "0"})
    assert r.status == 404
    assert (await stranger.delete(url, headers=TUS)).status == 404
    rows = (await audit_rows())[len(before) + 2:]
    assert [row[1:] for row in rows] == [("upload", message_id, "upload_not_found")] * 3
    assert all(row[0].startswith("test-write") for row in rows)
    # An unknown upload is no one's refusal: no row.
    r = await head(client, "/api/media/tus/" + "0" * 32)
    assert r.status == 404 and len(await audit_rows()) == len(before) + 5
