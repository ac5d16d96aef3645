"""Upload tokens: issued with a write key, used by a phone with no key, for one
message, up to a size, until they expire."""
from __future__ import annotations

import time
from datetime import datetime

import aiohttp
import pytest

from server.security import SIGNER
from server.security.signing import make_upload_token
from tests.dbutil import bearer, fetchval
from tests.media import jpeg_bytes, png_bytes

TOKENS = "/api/media/upload-tokens"
UPLOAD = "/api/media/upload-production"


async def issue(client, message_id: int, **fields) -> dict:
    resp = await client.post(TOKENS, json={"message_id": message_id, **fields})
    assert resp.status == 201, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return await resp.json()


async def stored(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM media_files")


async def test_issue_and_upload_with_bearer_and_with_query(client, anon_client, message_id,
                                                           db_dsn):
    got = await issue(client, message_id)
    assert set(got) >= {"token", "upload_url", "expires_at"}
    assert got["upload_url"] == f"{UPLOAD}?message_id={message_id}"
    expires = datetime.fromisoformat(got["expires_at"]).timestamp()
    assert time.time() + 3500 < expires <= time.time() + 3601
    data = png_bytes()
    resp = await anon_client.post(got["upload_url"], data=data, headers={
        "Content-Type": "image/png", **bearer(got["token"])})
    assert resp.status == 201, await resp.text()
    meta = await resp.json()
    assert meta["message_id"] == message_id
    # The phone reads back with the signed URL it got, still without a key.
    assert await (await anon_client.get(meta["url"])).read() == data
    # ?token= for clients that cannot set headers; multipart works too.
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", jpeg_bytes(5000), filename="a.jpg", content_type="image/jpeg")
    resp = await anon_client.post(UPLOAD, params={"token": got["token"]}, data=form)
    assert resp.status == 201, await resp.text()
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_audit_log WHERE action = "
                                  "'upload' AND outcome = 'ok' AND actor = $1",
                          f"token:{message_id}") == 2


async def test_token_for_another_message_is_403_and_stores_nothing(
        client, anon_client, store, pool, message_id):
    other = await store.create_message()
    token = (await issue(client, message_id))["token"]
    resp = await anon_client.post(UPLOAD, params={"message_id": str(other)}, data=png_bytes(),
                                  headers={"Content-Type": "image/png", **bearer(token)})
    assert resp.status == 403
    assert (await resp.json())["error"] == "token_wrong_message"
    # Multipart, the file before the message id: refused once the id arrives.
    with aiohttp.MultipartWriter("form-data") as mp:
        part = mp.append(jpeg_bytes(20_000), {"Content-Type": "image/jpeg"})
        part.set_content_disposition("form-data", name="file", filename="a.jpg")
        part = mp.append(str(other))
        part.set_content_disposition("form-data", name="message_id")
    resp = await anon_client.post(UPLOAD, data=mp, headers=bearer(token))
    assert resp.status == 403
    assert await stored(pool) == 0


async def test_expired_token_is_401(client, anon_client, message_id, pool):
    key = client.app[SIGNER].keys[0]
    token = make_upload_token(key, message_id, 10**6, int(time.time()) - 1)
    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                                  data=png_bytes(),
                                  headers={"Content-Type": "image/png", **bearer(token)})
    assert resp.status == 401
    assert (await resp.json())["error"] == "token_expired"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert await stored(pool) == 0


async def test_tampered_token_is_401(client, anon_client, message_id):
    token = (await issue(client, message_id, max_bytes=1000))["token"]
    bigger = token.replace(".1000.", ".99999999.")
    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                                  data=png_bytes(),
                                  headers={"Content-Type": "image/png", **bearer(bigger)})
    assert resp.status == 401
    assert (await resp.json())["error"] == "invalid_credentials"


async def test_over_max_bytes_is_413_while_streaming(client, anon_client, message_id, pool):
    token = (await issue(client, message_id, max_bytes=30_000))["token"]
    data = jpeg_bytes(80_000)

    async def chunked():   # no Content-Length: only the stream can tell
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                                  data=chunked(),
                                  headers={"Content-Type": "image/jpeg", **bearer(token)})
    assert resp.status == 413
    assert await stored(pool) == 0
    # Announced too big: refused before reading.
    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                                  headers={"Content-Type": "image/jpeg", **bearer(token)})
    assert resp.status == 413
    # Within the limit: fine.
    resp = await anon_client.post(UPLOAD, params={"message_id": str(message_id)},
                                  data=jpeg_bytes(30_000),
                                  headers={"Content-Type": "image/jpeg", **bearer(token)})
    assert resp.status == 201


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/media/1"), ("DELETE", "/api/media/1"), ("GET", "/api/audit"),
    ("POST", TOKENS), ("GET", "/api/media/serve/1"),
])
async def test_a_token_only_uploads(client, anon_client, message_id, method, path):
    token = (await issue(client, message_id))["token"]
    resp = await anon_client.request(method, path, headers=bearer(token))
    assert resp.status == 403
    assert (await resp.json())["error"] == "token_not_allowed"


@pytest.mark.parametrize("body,status", [
    ({}, 400), ({"message_id": "5"}, 400), ({"message_id": 0}, 400),
    ({"message_id": True}, 400), ({"message_id": 2**40}, 400),
    ({"message_id": 424242}, 404),
    ({"message_id": "MSG", "max_bytes": 1}, 400),
    ({"message_id": "MSG", "max_bytes": 0}, 400),
    ({"message_id": "MSG", "max_bytes": 10**15}, 400),
    ({"message_id": "MSG", "ttl_seconds": 0}, 400),
    ({"message_id": "MSG", "ttl_seconds": 10**9}, 400),
    ({"message_id": "MSG", "ttl_seconds": 1.5}, 400),
    ([1, 2], 400), ("not json", 400),
])
async def test_bad_token_requests(client, message_id, body, status):
    if isinstance(body, dict) and body.get("message_id") == "MSG":
        body = {**body, "message_id": message_id}
    if body == {"message_id": message_id, "max_bytes": 1}:
        status = 201
    resp = (await client.post(TOKENS, data=body) if isinstance(body, str)
            else await client.post(TOKENS, json=body))
    assert resp.status == status, await resp.text()
    assert "error" in (await resp.json()) or status == 201


async def test_issuing_needs_write_and_is_audited(client_as, client, message_id, db_dsn):
    reader = await client_as("read")
    assert (await reader.post(TOKENS, json={"message_id": message_id})).status == 403
    writer = await client_as("write")
    assert (await writer.post(TOKENS, json={"message_id": message_id})).status == 201
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_audit_log WHERE action = "
                                  "'token_issued' AND message_id = $1 AND outcome = 'ok'",
                          message_id) == 1
