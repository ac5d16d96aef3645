"""Bounds per client on tus uploads: how many unfinished ones a key or token may have
(MEDIA_TUS_MAX_OPEN_PER_CLIENT), and a token's max_bytes over all of them together."""
import asyncio
import base64

from tests.media import jpeg_bytes

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kw.items())


async def post(client, message_id, length, auth=None):
    headers = {**TUS, **(auth or {}), "Upload-Metadata": meta(message_id=message_id)}
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    return await client.post("/api/media/tus/", headers=headers)


def path_of(r) -> str:
    return "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]


async def test_open_uploads_per_key(client_with, message_id, aiohttp_client, key_for):
    client = await client_with(tus__max_open_per_client=3)
    data = jpeg_bytes(5000)
    urls = []
    for length in (10, 10, len(data)):
        r = await post(client, message_id, length)
        assert r.status == 201
        urls.append(path_of(r))
    r = await post(client, message_id, None)
    assert r.status == 429 and (await r.json())["error"] == "too_many_open_uploads"
    assert r.headers["Tus-Resumable"] == "1.0.0"
    # Another key has its own count.
    other = await aiohttp_client(client.server, headers={
        "Authorization": f"Bearer {await key_for('write')}"})
    assert (await post(other, message_id, 10)).status == 201
    # A terminated upload, or a finished one, no longer counts.
    assert (await client.delete(urls[0], headers=TUS)).status == 204
    assert (await post(client, message_id, 10)).status == 201
    assert (await post(client, message_id, 10)).status == 429
    r = await client.patch(urls[2], data=data, headers={**TUS, **OCTET, "Upload-Offset": "0"})
    assert r.status == 204 and r.headers["Media-Id"]
    assert (await post(client, message_id, 10)).status == 201
    assert (await post(client, message_id, 10)).status == 429


async def test_concurrent_creations_at_the_limit(client_with, message_id, aiohttp_client,
                                                 key_for):
    client = await client_with(tus__max_open_per_client=2)
    for _ in range(5):   # each round a fresh key, one upload open, two racing for the last
        c = await aiohttp_client(client.server, headers={
            "Authorization": f"Bearer {await key_for('write')}"})
        assert (await post(c, message_id, 10)).status == 201
        statuses = sorted(r.status for r in await asyncio.gather(
            *(post(c, message_id, 10) for _ in range(4))))
        assert statuses == [201, 429, 429, 429]


async def _token(client, message_id, max_bytes):
    r = await client.post("/api/media/upload-tokens",
                          json={"message_id": message_id, "max_bytes": max_bytes})
    assert r.status in (200, 201), await r.text()
    return {"Authorization": f"Bearer {(await r.json())['token']}"}


async def test_token_bytes_over_all_its_uploads(client, message_id, anon_client):
    auth = await _token(client, message_id, 10_000)
    assert (await post(anon_client, message_id, 6000, auth)).status == 201
    r = await post(anon_client, message_id, 4001, auth)   # 6000 + 4001 > 10000
    assert r.status == 413 and (await r.json())["error"] == "payload_too_large"
    r = await post(anon_client, message_id, None, auth)
    assert r.status == 201
    deferred = path_of(r)

    async def patch(url, offset, data, **extra):
        return await anon_client.patch(url, data=data, headers={
            **TUS, **OCTET, **auth, "Upload-Offset": str(offset), **extra})

    assert (await patch(deferred, 0, b"a" * 3000)).status == 204   # holds 3000
    r = await patch(deferred, 3000, b"a" * 1001)                     # 6000 + 4001
    assert r.status == 413
    r = await patch(deferred, 3000, b"a" * 500, **{"Upload-Length": "4001"})
    assert r.status == 413                                            # declared: too
    assert (await patch(deferred, 3000, b"a" * 1000)).status == 204  # exactly 10000
    assert (await post(anon_client, message_id, 1, auth)).status == 413
    # A key has no byte budget beyond MEDIA_MAX_UPLOAD_BYTES per upload.
    assert (await post(client, message_id, 60 * 1024**2)).status == 201


async def test_token_bytes_reserved_by_a_patch_in_progress(client, message_id, anon_client,
                                                           store):
    auth = await _token(client, message_id, 10_000)
    assert (await post(anon_client, message_id, 6000, auth)).status == 201
    a = path_of(await post(anon_client, message_id, None, auth))
    b = path_of(await post(anon_client, message_id, None, auth))
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"PATCH {a} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  f"Authorization: {auth['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\n"
                  f"Upload-Offset: 0\r\nContent-Length: 3000\r\n\r\n").encode() + b"a" * 1000)
    await writer.drain()

    async def patch_b():
        return await anon_client.patch(b, data=b"b" * 2000, headers={
            **TUS, **OCTET, **auth, "Upload-Offset": "0"})

    for _ in range(100):   # until a's PATCH has reserved what it may bring
        async with store.connection() as conn:
            if await conn.fetchval("SELECT count(*) FROM tus_uploads WHERE reserved = 3000"):
                break
        await asyncio.sleep(0.05)
    # While a's PATCH may still bring 3000 bytes, b may not have 2000 (6000 + 3000 +
    # 2000 > 10000).
    r = await patch_b()
    assert r.status == 413
    writer.close()   # a keeps its 1000 bytes; its reservation goes
    for _ in range(50):
        r = await patch_b()
        if r.status != 413:
            break
        await asyncio.sleep(0.05)
    assert r.status == 204, await r.text()   # 6000 + 1000 + 2000
