"""POST /api/media/upload-production and the metadata routes, through a real server."""
import asyncio
import hashlib
import json
import logging
import re
import shutil
from urllib.parse import quote

import aiohttp
import pytest

from server.store.media import STORE
from tests.media import jpeg_bytes, png_bytes

URL = "/api/media/upload-production"
CHUNK = 3 * 1024


def form(*fields):
    fd = aiohttp.FormData(default_to_multipart=True)
    for name, value, *rest in fields:
        if isinstance(value, bytes):
            fd.add_field(name, value, filename=rest[0] if rest else "photo.jpg",
                         content_type="application/octet-stream")
        else:
            fd.add_field(name, value)
    return fd


async def rows(pool, sql="SELECT count(*) FROM media_files"):
    async with pool.acquire() as conn:
        return await conn.fetchval(sql)


async def assert_nothing_stored(pool):
    assert await rows(pool) == 0
    assert await rows(pool, "SELECT count(*) FROM content_chunks") == 0


async def assert_error(resp, status, code):
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and "Traceback" not in body["message"]
    assert "max-age=31536000" not in resp.headers.get("Cache-Control", "")


# -- the two forms ------------------------------------------------------------------

async def test_multipart_round_trip_and_database_row(client, pool, message_id):
    data = jpeg_bytes(5 * CHUNK + 11)
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("file", data, "holiday.jpg")))
    assert resp.status == 201
    body = await resp.json()
    assert resp.headers["Location"] == f"/api/media/{body['id']}"
    assert body["message_id"] == message_id
    assert body["file_size"] == len(data)
    assert body["mime_type"] == "image/jpeg" and body["media_type"] == "image"
    assert body["original_name"] == "holiday.jpg"
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", body["file_name"])
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT upload_state, chunk_count, chunk_size FROM "
                                  "media_files WHERE id=$1", body["id"])
    assert dict(row) == {"upload_state": "complete", "chunk_count": 6, "chunk_size": CHUNK}
    served = await client.get(body["url"])
    assert await served.read() == data


async def test_multipart_file_before_message_id(client, message_id):
    data = png_bytes()
    resp = await client.post(URL, data=form(("file", data, "a.png"),
                                            ("message_id", str(message_id))))
    assert resp.status == 201
    body = await resp.json()
    assert body["message_id"] == message_id and body["mime_type"] == "image/png"
    assert await (await client.get(body["url"])).read() == data


async def test_multipart_unknown_extra_fields_ignored(client, message_id):
    resp = await client.post(URL, data=form(("caption", "hi"), ("message_id", str(message_id)),
                                            ("file", png_bytes())))
    assert resp.status == 201


async def test_raw_body_with_query_parameters(client, message_id):
    data = jpeg_bytes(2 * CHUNK)
    resp = await client.post(f"{URL}?message_id={message_id}&filename=c%C3%A2mera.jpg",
                             data=data, headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201
    body = await resp.json()
    assert body["original_name"] == "câmera.jpg"
    assert await (await client.get(body["url"])).read() == data


async def test_raw_body_with_headers_and_chunked_encoding(client, message_id):
    data = jpeg_bytes(7 * CHUNK + 1)

    async def gen():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    resp = await client.post(URL, data=gen(), headers={
        "Content-Type": "application/octet-stream", "X-Message-Id": str(message_id),
        "X-File-Name": "voz%20nota.jpg"})
    assert resp.status == 201
    body = await resp.json()
    assert body["original_name"] == "voz nota.jpg"
    assert body["file_size"] == len(data)
    assert await (await client.get(body["url"])).read() == data


# The smallest sizes a real (validated) JPEG can have: the sample itself, and one more.
@pytest.mark.parametrize("size", [len(jpeg_bytes()), len(jpeg_bytes()) + 1, CHUNK - 1, CHUNK,
                                  CHUNK + 1, 3 * CHUNK])
async def test_boundary_sizes_round_trip(client, message_id, size):
    data = jpeg_bytes(size)
    resp = await client.post(f"{URL}?message_id={message_id}", data=data,
                             headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201
    body = await resp.json()
    assert body["file_size"] == size
    assert await (await client.get(body["url"])).read() == data


@pytest.mark.parametrize("size", [1, 2])
async def test_too_small_to_be_any_allowed_type(client, pool, message_id, size):
    # Not UTF-8 either, so not a text file.
    resp = await client.post(f"{URL}?message_id={message_id}", data=b"\xff" * size,
                             headers={"Content-Type": "image/jpeg"})
    await assert_error(resp, 415, "unsupported_media_type")
    await assert_nothing_stored(pool)


async def test_original_name_is_sanitised(client, message_id):
    name = "../..\\etc/pa\u202ess\u0000wd\r\n.png"
    resp = await client.post(f"{URL}?message_id={message_id}&filename={quote(name)}",
                             data=png_bytes(), headers={"Content-Type": "image/png"})
    assert resp.status == 201
    got = (await resp.json())["original_name"]
    assert got == "passwd.png"


async def test_control_character_in_part_header_is_400(client, pool, message_id):
    # Built by hand: aiohttp's client (rightly) refuses to send such a header itself.
    body = (b"--b\r\nContent-Disposition: form-data; name=\"message_id\"\r\n\r\n"
            + str(message_id).encode() + b"\r\n--b\r\nContent-Disposition: form-data; "
            b"name=\"file\"; filename=\"a\x07b.png\"\r\n\r\n" + png_bytes()
            + b"\r\n--b--\r\n")
    resp = await client.post(URL, data=body,
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    await assert_error(resp, 400, "bad_request")
    await assert_nothing_stored(pool)


async def test_long_original_name_truncated_to_255(client, message_id):
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("file", png_bytes(), "é" * 400 + ".png")))
    assert resp.status == 201
    assert len((await resp.json())["original_name"]) <= 255


# -- bad input: a clear error, nothing stored ------------------------------------------

async def test_empty_file(client, pool, message_id):
    resp = await client.post(URL, data=form(("message_id", str(message_id)), ("file", b"")))
    await assert_error(resp, 400, "empty_file")
    await assert_nothing_stored(pool)


async def test_empty_raw_body(client, pool, message_id):
    resp = await client.post(f"{URL}?message_id={message_id}", data=b"",
                             headers={"Content-Type": "image/jpeg"})
    await assert_error(resp, 400, "empty_file")
    await assert_nothing_stored(pool)


async def test_missing_file(client, pool, message_id):
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("other", "x")))
    await assert_error(resp, 400, "missing_file")
    await assert_nothing_stored(pool)


async def test_missing_message_id_multipart(client, pool):
    resp = await client.post(URL, data=form(("file", png_bytes())))
    await assert_error(resp, 400, "missing_message_id")
    await assert_nothing_stored(pool)


async def test_missing_message_id_raw(client, pool):
    resp = await client.post(URL, data=png_bytes(), headers={"Content-Type": "image/png"})
    await assert_error(resp, 400, "missing_message_id")
    await assert_nothing_stored(pool)


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "0", "2147483648",
                                   "99999999999999999999999", "١٢", " "])
async def test_invalid_message_id(client, pool, value):
    resp = await client.post(URL, data=form(("message_id", value), ("file", png_bytes())))
    code = "missing_message_id" if not value.strip() else "invalid_message_id"
    await assert_error(resp, 400, code)
    await assert_nothing_stored(pool)


async def test_unknown_message_before_file(client, pool):
    resp = await client.post(URL, data=form(("message_id", "424242"), ("file", png_bytes())))
    await assert_error(resp, 404, "message_not_found")
    await assert_nothing_stored(pool)


async def test_unknown_message_after_file(client, pool):
    resp = await client.post(URL, data=form(("file", jpeg_bytes(4 * CHUNK)),
                                            ("message_id", "424242")))
    await assert_error(resp, 404, "message_not_found")
    await assert_nothing_stored(pool)


async def test_unknown_message_raw(client, pool):
    resp = await client.post(f"{URL}?message_id=424242", data=png_bytes(),
                             headers={"Content-Type": "image/png"})
    await assert_error(resp, 404, "message_not_found")
    await assert_nothing_stored(pool)


async def test_unsupported_type_by_content(client, pool, message_id):
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("file", b"<html><script>alert(1)</script>",
                                             "x.jpg")))
    await assert_error(resp, 415, "unsupported_media_type")
    await assert_nothing_stored(pool)


@pytest.mark.parametrize("ctype,body", [
    ("application/json", b'{"message_id": 1}'),
    ("application/x-www-form-urlencoded", b"message_id=1"),
    ("text/plain", b"hello"),
])
async def test_neither_multipart_nor_raw(client, pool, ctype, body):
    resp = await client.post(URL, data=body, headers={"Content-Type": ctype})
    await assert_error(resp, 415, "unsupported_request_type")
    await assert_nothing_stored(pool)


async def test_two_files_refused(client, pool, message_id):
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("file", png_bytes()), ("file", png_bytes())))
    await assert_error(resp, 400, "bad_request")
    await assert_nothing_stored(pool)


async def test_oversized_field_refused(client, pool, message_id):
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("caption", "x" * 5000), ("file", png_bytes())))
    await assert_error(resp, 400, "bad_request")
    await assert_nothing_stored(pool)


async def test_malformed_multipart(client, pool):
    resp = await client.post(URL, data=b"garbage", headers={
        "Content-Type": "multipart/form-data; boundary=xyz"})
    await assert_error(resp, 400, "bad_request")
    await assert_nothing_stored(pool)


# -- size limit ---------------------------------------------------------------------------

@pytest.fixture
async def small_limit_client(server_for):
    return await server_for(uploads__max_bytes=10 * CHUNK)


async def test_limit_exact_size_accepted(small_limit_client, message_id):
    resp = await small_limit_client.post(
        f"{URL}?message_id={message_id}", data=jpeg_bytes(10 * CHUNK),
        headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201


async def test_over_limit_by_content_length(small_limit_client, pool, message_id):
    resp = await small_limit_client.post(
        f"{URL}?message_id={message_id}", data=jpeg_bytes(10 * CHUNK + 1),
        headers={"Content-Type": "image/jpeg"})
    await assert_error(resp, 413, "payload_too_large")
    await assert_nothing_stored(pool)


async def test_over_limit_detected_while_streaming(small_limit_client, pool, message_id):
    sent = 0

    async def gen():  # chunked: no Content-Length to judge by in advance
        nonlocal sent
        data = jpeg_bytes(100 * CHUNK)
        for i in range(0, len(data), CHUNK):
            sent += CHUNK
            yield data[i:i + CHUNK]

    resp = await small_limit_client.post(
        URL, data=gen(), headers={"Content-Type": "image/jpeg",
                                  "X-Message-Id": str(message_id)})
    await assert_error(resp, 413, "payload_too_large")
    await assert_nothing_stored(pool)


async def test_over_limit_multipart_streaming(small_limit_client, pool, message_id):
    async def gen():
        data = jpeg_bytes(30 * CHUNK)
        for i in range(0, len(data), CHUNK):
            yield data[i:i + CHUNK]

    # A multipart body of unknown length (chunked), so only the stream can tell.
    with aiohttp.MultipartWriter("form-data") as mp:
        part = mp.append(str(message_id))
        part.set_content_disposition("form-data", name="message_id")
        part = mp.append(gen(), {"Content-Type": "image/jpeg"})
        part.set_content_disposition("form-data", name="file", filename="big.jpg")
    resp = await small_limit_client.post(URL, data=mp)
    await assert_error(resp, 413, "payload_too_large")
    await assert_nothing_stored(pool)


async def _expecting(client, expect: str, length: int, message_id: int):
    """Send only the head of a request with ``Expect``; (status line, headers, JSON body)
    of the answer, which must come before any of the body is sent."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        auth = client.session.headers.get("Authorization")   # the admin key
        writer.write((f"POST {URL}?message_id={message_id} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: {auth}\r\n"
                      f"Content-Type: image/jpeg\r\nContent-Length: {length}\r\n"
                      f"Expect: {expect}\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        body = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), 5)
        return lines[0], headers, json.loads(body)
    finally:
        writer.close()


async def test_expect_continue_refused_when_announced_too_big(small_limit_client, pool,
                                                              message_id):
    status, headers, body = await _expecting(small_limit_client, "100-continue", 10**12,
                                             message_id)
    assert status.startswith("HTTP/1.1 413")
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Connection"] == "close"
    assert body["error"] == "payload_too_large"
    await assert_nothing_stored(pool)


@pytest.mark.parametrize("expect", ["something-else", "100-continue-please", "200-ok"])
async def test_unknown_expectation_is_417(client, pool, message_id, expect):
    status, headers, body = await _expecting(client, expect, 1000, message_id)
    assert status.startswith("HTTP/1.1 417")
    assert headers["Content-Type"].startswith("application/json")
    assert body["error"] == "expectation_failed"
    await assert_nothing_stored(pool)


async def test_expect_continue_accepted_then_body(client, message_id, admin_key):
    data = png_bytes()
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write((f"POST {URL}?message_id={message_id} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {admin_key}\r\n"
                  f"Content-Type: image/png\r\nContent-Length: {len(data)}\r\n"
                  "Expect: 100-continue\r\n\r\n").encode())
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 100")
    await reader.readline()
    writer.write(data)
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 201")
    writer.close()


async def test_client_disconnect_mid_body_leaves_nothing(client, pool, message_id, admin_key):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write((f"POST {URL}?message_id={message_id} HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {admin_key}\r\n"
                  f"Content-Type: image/jpeg\r\nContent-Length: {100 * CHUNK}\r\n\r\n").encode())
    writer.write(jpeg_bytes(20 * CHUNK))
    await writer.drain()
    for _ in range(50):  # wait until the server has started storing it
        if await rows(pool, "SELECT count(*) FROM content_chunks"):
            break
        await asyncio.sleep(0.05)
    assert await rows(pool, "SELECT count(*) FROM content_chunks") > 0
    writer.close()
    for _ in range(100):
        if await rows(pool) == 0:
            break
        await asyncio.sleep(0.05)
    await assert_nothing_stored(pool)
    # ... and the server carries on.
    assert (await client.get("/healthz")).status == 200


# -- metadata routes ------------------------------------------------------------------

async def upload(client, message_id, data=None, name="p.png"):
    resp = await client.post(URL, data=form(("message_id", str(message_id)),
                                            ("file", data or png_bytes(), name)))
    assert resp.status == 201
    return await resp.json()


async def test_get_metadata(client, message_id):
    up = await upload(client, message_id)
    resp = await client.get(f"/api/media/{up['id']}")
    assert resp.status == 200
    assert await resp.json() == up


async def test_list_message_media_oldest_first(client, message_id):
    ids = [(await upload(client, message_id))["id"] for _ in range(3)]
    resp = await client.get(f"/api/messages/{message_id}/media")
    assert resp.status == 200
    body = await resp.json()
    assert [m["id"] for m in body["items"]] == ids
    assert body["next_cursor"] is None


async def test_list_unknown_message(client):
    await assert_error(await client.get("/api/messages/777/media"), 404, "message_not_found")
    await assert_error(await client.get("/api/messages/abc/media"), 404, "message_not_found")


async def test_delete(client, pool, message_id):
    up = await upload(client, message_id, jpeg_bytes(4 * CHUNK))
    resp = await client.delete(f"/api/media/{up['id']}")
    assert resp.status == 204
    assert await rows(pool) == 0
    # Its content (no row shows it now) waits for the reclaim's grace period.
    assert await rows(pool, "SELECT count(*) FROM media_contents WHERE sha256 = "
                            f"decode('{up['sha256']}', 'hex')") == 1
    assert await rows(pool, "SELECT count(*) FROM media_contents c WHERE EXISTS "
                            "(SELECT 1 FROM media_variants v WHERE v.content_id = c.id)") == 0
    await assert_error(await client.get(f"/api/media/{up['id']}"), 404, "media_not_found")
    await assert_error(await client.get(up["url"]), 404, "media_not_found")
    await assert_error(await client.delete(f"/api/media/{up['id']}"), 404, "media_not_found")


@pytest.mark.parametrize("mid", ["0", "abc", "2147483648", "-3", "1e3"])
async def test_bad_media_ids_are_404(client, mid):
    await assert_error(await client.get(f"/api/media/{mid}"), 404, "media_not_found")
    await assert_error(await client.delete(f"/api/media/{mid}"), 404, "media_not_found")


async def test_legacy_url_of_an_uploaded_file_is_404(client, message_id):
    # /uploads/media redirects names that were legacy files only
    # (tests/http/test_legacy_http.py); an upload's generated name is not a credential.
    up = await upload(client, message_id)
    resp = await client.get(f"/uploads/media/{up['file_name']}", allow_redirects=False)
    await assert_error(resp, 404, "media_not_found")
    await assert_error(await client.get("/uploads/media/nope.jpg", allow_redirects=False),
                       404, "media_not_found")


async def test_unknown_route_and_method_are_json(client):
    await assert_error(await client.get("/nope"), 404, "not_found")
    resp = await client.put(URL)
    await assert_error(resp, 405, "method_not_allowed")


async def test_concurrent_uploads_and_downloads(client, message_id):
    blobs = [jpeg_bytes(n * 997 + 3) for n in range(1, 41)]
    ups = await asyncio.gather(*(upload(client, message_id, b, f"{i}.jpg")
                                 for i, b in enumerate(blobs)))

    async def fetch(u):
        return await (await client.get(u["url"])).read()

    assert await asyncio.gather(*(fetch(u) for u in ups)) == blobs


async def test_health_and_metrics(client, message_id):
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await upload(client, message_id)
    text = await (await client.get("/metrics")).text()
    assert 'media_uploads_total{media_type="image"} 1.0' in text
    assert 'media_stored_files{media_type="image"} 1.0' in text


async def test_upload_in_progress_is_404_everywhere(client, pool, message_id, admin_key):
    # Start a raw upload and hold it open mid-body: its row and chunks exist, invisible.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write((f"POST {URL}?message_id={message_id}&filename=wip.jpg HTTP/1.1\r\n"
                  f"Host: x\r\nAuthorization: Bearer {admin_key}\r\n"
                  f"Content-Type: image/jpeg\r\n"
                  f"Content-Length: {100 * CHUNK}\r\n\r\n").encode())
    writer.write(jpeg_bytes(10 * CHUNK))
    await writer.drain()
    media_id = None
    for _ in range(100):
        async with pool.acquire() as conn:
            media_id = await conn.fetchval(
                "SELECT id FROM media_files WHERE upload_state = 'uploading'")
        if media_id:
            break
        await asyncio.sleep(0.05)
    assert media_id is not None
    try:
        for path in (f"/api/media/serve/{media_id}", f"/api/media/{media_id}"):
            await assert_error(await client.get(path), 404, "media_not_found")
        resp = await client.head(f"/api/media/serve/{media_id}")
        assert resp.status == 404
        await assert_error(await client.delete(f"/api/media/{media_id}"), 404,
                           "media_not_found")
        listing = await (await client.get(f"/api/messages/{message_id}/media")).json()
        assert listing == {"items": [], "next_cursor": None}
    finally:
        writer.close()


async def test_stalled_upload_is_cut_with_408_and_removed(server_for, pool, message_id):
    client = await server_for(uploads__idle_timeout=0.5)
    stalled = asyncio.Event()

    async def gen():   # sends a few chunks, then nothing
        data = jpeg_bytes(4 * CHUNK)
        for i in range(0, len(data), CHUNK):
            yield data[i:i + CHUNK]
        await asyncio.sleep(10)
        stalled.set()

    resp = await asyncio.wait_for(client.post(
        f"{URL}?message_id={message_id}", data=gen(),
        headers={"Content-Type": "image/jpeg"}), 8)
    await assert_error(resp, 408, "upload_timeout")
    assert not stalled.is_set()
    await assert_nothing_stored(pool)


# -- odd requests ------------------------------------------------------------------------

MP = {"Content-Type": "multipart/form-data; boundary=b"}
# {message_id}: replaced by the test's own message.
RAW = {"Content-Type": "image/png", "X-Message-Id": "{message_id}"}
FILE_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'

ODD = [
    # (name, headers, body, the status expected)
    ("no boundary", {"Content-Type": "multipart/form-data"}, b"--x\r\n", 400),
    ("empty boundary", {"Content-Type": "multipart/form-data; boundary="}, b"--\r\n", 400),
    ("weird boundary", {"Content-Type": 'multipart/form-data; boundary="a b\\"c"'},
     b'--a b"c\r\n\r\n', 400),
    ("truncated part", MP, FILE_PART + b"\r\n" + png_bytes()[:50], 400),
    ("part without disposition", MP,
     b"--b\r\nContent-Type: image/png\r\n\r\n" + png_bytes() + b"\r\n--b--\r\n", 400),
    ("nested multipart", MP,
     b"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n"
     b'Content-Disposition: form-data; name="file"\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--\r\n', 400),
    ("base64 part is not decoded", MP,
     FILE_PART + b"Content-Transfer-Encoding: base64\r\n\r\n\0!!!!\r\n--b--\r\n", 415),
    ("gzip part is not decoded", MP,
     FILE_PART + b"Content-Encoding: gzip\r\n\r\n\0notgzip\r\n--b--\r\n", 415),
    ("raw body that is not the gzip it claims", {**RAW, "Content-Encoding": "gzip"},
     b"notgzip", 415),   # any coding is refused before the body is read
    ("raw message id with junk", {**RAW, "X-Message-Id": "{message_id}; drop"}, png_bytes(),
     400),
    ("raw content-disposition with bad escapes",
     {**RAW, "Content-Disposition": "attachment; filename*=UTF-8''%E2%82%AC%ZZ.png"},
     png_bytes(), 201),
    ("raw content-disposition garbage", {**RAW, "Content-Disposition": ";;;==="},
     png_bytes(), 201),
    ("x-file-name with invalid utf-8", {**RAW, "X-File-Name": "%C3%28%ff.png"},
     png_bytes(), 201),
    ("content-type with broken parameter", {**RAW, "Content-Type": 'image/png; charset="'},
     png_bytes(), 201),
]


@pytest.mark.parametrize("name,headers,body,status", ODD, ids=[c[0] for c in ODD])
async def test_odd_requests_get_a_clear_answer_never_a_500(client, pool, message_id, caplog,
                                                            name, headers, body, status):
    caplog.set_level(logging.ERROR)
    headers = {k: v.replace("{message_id}", str(message_id)) for k, v in headers.items()}
    resp = await client.post(URL, data=body, headers=headers)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    if status >= 400:
        await assert_nothing_stored(pool)
    else:
        assert await rows(pool) == 1


async def test_server_header_does_not_announce_versions(client):
    resp = await client.get("/healthz")
    assert resp.headers["Server"] == "media-store"
    resp = await client.get("/api/media/serve/1")
    assert resp.status == 404 and resp.headers["Server"] == "media-store"


async def test_truncated_message_id_field_is_400(client, pool, message_id):
    body = (b'--b\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n'
            + str(message_id).encode())
    resp = await client.post(URL, data=body, headers=MP)
    await assert_error(resp, 400, "bad_request")
    await assert_nothing_stored(pool)


async def test_stall_between_form_fields_is_408(server_for, pool, message_id):
    # The idle timeout holds for every read, not only the file's: here the client
    # sends message_id, then nothing.
    client = await server_for(uploads__idle_timeout=0.5)

    async def gen():
        yield (b'--b\r\nContent-Disposition: form-data; name="message_id"\r\n\r\n'
               + str(message_id).encode() + b"\r\n")
        await asyncio.sleep(10)

    resp = await asyncio.wait_for(client.post(URL, data=gen(), headers=MP), 8)
    await assert_error(resp, 408, "upload_timeout")
    await assert_nothing_stored(pool)


async def test_upload_reclaimed_by_the_janitor_midway_is_410_upload_expired(
        client, pool, message_id, admin_key):
    # A raw upload held open mid-body, reclaimed as stale (as the janitor would after
    # MEDIA_UPLOAD_STALE_SECONDS), then its client sends more.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write((f"POST {URL}?message_id={message_id} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {admin_key}\r\n"
                      f"Content-Type: image/jpeg\r\nContent-Length: {100 * CHUNK}\r\n\r\n"
                      ).encode())
        data = jpeg_bytes(100 * CHUNK)
        writer.write(data[:10 * CHUNK])
        await writer.drain()
        for _ in range(100):
            if await rows(pool, "SELECT count(*) FROM content_chunks") >= 9:
                break
            await asyncio.sleep(0.05)
        # Aged, then reclaimed; again if a chunk write in flight touched or locked the
        # row (the janitor skips locked rows).
        reclaimed = 0
        for _ in range(50):
            async with pool.acquire() as conn:
                await conn.execute(
                    "UPDATE media_files SET updated_at = now() - interval '2 days'")
            reclaimed = await client.app[STORE].reclaim_stale_uploads(3600)
            if reclaimed:
                break
            await asyncio.sleep(0.05)
        assert reclaimed == 1
        writer.write(data[10 * CHUNK:])
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 410 "), head
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])
        body = json.loads(await reader.readexactly(length))
        assert body["error"] == "upload_expired"
    finally:
        writer.close()
    await assert_nothing_stored(pool)


# -- file names as clients send them ------------------------------------------------------

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def served_name(client, body: dict) -> str:
    """The file name the serve route gives back (its RFC 8187 filename*)."""
    resp = await client.head(body["url"])
    _, params = aiohttp.multipart.parse_content_disposition(
        resp.headers["Content-Disposition"])
    return params["filename*"]


@pytest.mark.parametrize("name", ["relatório.pdf", "100%.pdf", 'a "quoted" name.pdf',
                                  "naïve café 50%.pdf"])
async def test_aiohttp_client_percent_encoded_names_come_back_decoded(client, message_id,
                                                                       name):
    # aiohttp's FormData percent-encodes file names by default (quote_fields=True).
    fd = aiohttp.FormData()
    fd.add_field("message_id", str(message_id))
    fd.add_field("file", PDF, filename=name, content_type="application/pdf")
    resp = await client.post(URL, data=fd)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    meant = name.replace('"', "")   # quotes are never kept in a stored name
    assert body["original_name"] == meant
    assert await served_name(client, body) == meant


async def test_curl_form_upload_names(client, message_id, tmp_path, admin_key):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    # curl sends the name as raw UTF-8, escaping '"' as %22 (the HTML form encoding),
    # and leaves a literal '%' alone.
    path = tmp_path / 'relatório "final" 100%.pdf'
    path.write_bytes(PDF)
    proc = await asyncio.create_subprocess_exec(
        curl, "-sS", "--noproxy", "*", "-H", f"Authorization: Bearer {admin_key}",
        "-F", f"message_id={message_id}",
        "-F", f"file=@{path};type=application/pdf", str(client.make_url(URL)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    body = json.loads(out)
    assert body["original_name"] == "relatório final 100%.pdf"
    assert await served_name(client, body) == "relatório final 100%.pdf"


BROWSER_NAMES = [
    # (filename="..." as a browser writes it, in UTF-8, the name kept)
    ("relatório %22final%22.pdf", "relatório final.pdf"),
    ("100%.pdf", "100%.pdf"),
    ("linha%0D%0Aquebrada.pdf", "linhaquebrada.pdf"),
    ("ação%41.pdf", "ação%41.pdf"),
]


@pytest.mark.parametrize("sent,kept", BROWSER_NAMES, ids=[s for s, _ in BROWSER_NAMES])
async def test_browser_style_form_names(client, message_id, sent, kept):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"message_id\"\r\n\r\n"
            + str(message_id).encode() + b"\r\n--b\r\nContent-Disposition: form-data; "
            b"name=\"file\"; filename=\"" + sent.encode() + b"\"\r\n"
            b"Content-Type: application/pdf\r\n\r\n" + PDF + b"\r\n--b--\r\n")
    resp = await client.post(URL, data=body, headers=MP)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["original_name"] == kept


async def test_filename_star_wins_over_a_percent_encoded_filename(client, message_id):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"message_id\"\r\n\r\n"
            + str(message_id).encode() + b"\r\n--b\r\nContent-Disposition: form-data; "
            b"name=\"file\"; filename=\"x%41.pdf\"; filename*=UTF-8''a%25b%C3%A7.pdf\r\n"
            b"\r\n" + PDF + b"\r\n--b--\r\n")
    resp = await client.post(URL, data=body, headers=MP)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["original_name"] == "a%bç.pdf"
