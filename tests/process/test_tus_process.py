"""tus across real server processes: the instance that receives the last bytes of an
upload is killed (SIGKILL) at some moment around its completion — before the bytes are
stored, while they are processed, or after — and another instance brings the upload to
one visible media, never two, never a half-made one."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal

import aiohttp
import pytest

from tests.dbutil import bearer, create_api_key, fetchval, new_message
from tests.media import av_sample

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kw.items())


async def _patch_raw(port: int, path: str, key: str, offset: int, data: bytes):
    """Send a whole PATCH and leave the connection open: the server is killed while
    it works on it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  f"Authorization: Bearer {key}\r\nTus-Resumable: 1.0.0\r\n"
                  f"Content-Type: application/offset+octet-stream\r\n"
                  f"Upload-Offset: {offset}\r\nContent-Length: {len(data)}\r\n\r\n").encode()
                 + data)
    await writer.drain()
    return writer


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.6])
async def test_instance_killed_around_completion(procs, db_dsn, delay):
    env = {"DATABASE_URL": db_dsn, "MEDIA_TUS_LEASE_SECONDS": "2",
           "MEDIA_HEARTBEAT_SECONDS": "0.5", "MEDIA_INSTANCE_DEAD_SECONDS": "2",
           "MEDIA_IMAGE_COMPRESS": "true", "MEDIA_KEEP_IMAGE_METADATA": "false"}
    a, b = procs.start(env), procs.start(env)
    key = await create_api_key(db_dsn, "write")
    message_id = await new_message(db_dsn)
    video = av_sample("mp4", video="libx264", audio="aac", seconds=12, width=320,
                      height=240)
    auth = bearer(key)
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.post(f"{b.url}/api/media/upload-production?message_id={message_id}"
                             f"&filename=v.mp4", data=video,
                             headers={"Content-Type": "video/mp4"}) as r:
            assert r.status == 201, await r.text()
            plain = await r.json()
        async with http.post(f"{a.url}/api/media/tus/", headers={
                **TUS, "Upload-Length": str(len(video)),
                "Upload-Metadata": meta(message_id=message_id, filename="v.mp4")}) as r:
            assert r.status == 201
            path = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
        last = len(video) - 5000
        async with http.patch(a.url + path, data=video[:last],
                              headers={**TUS, **OCTET, "Upload-Offset": "0"}) as r:
            assert r.status == 204
        conn = await _patch_raw(a.port, path, key, last, video[last:])
        await asyncio.sleep(delay)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        conn.close()

        # The client goes on against the other instance, as a tus client does: HEAD,
        # then send what is missing; 423 means wait.
        media_id, seen = None, []
        for _ in range(300):
            async with http.head(b.url + path, headers=TUS) as r:
                status, headers = r.status, r.headers
            seen.append(status if status != 200 else headers.get("Upload-Offset"))
            if status == 423:
                await asyncio.sleep(0.1)
                continue
            assert status == 200, status
            if "Media-Id" in headers:
                media_id = int(headers["Media-Id"])
                break
            offset = int(headers["Upload-Offset"])
            async with http.patch(b.url + path, data=video[offset:], headers={
                    **TUS, **OCTET, "Upload-Offset": str(offset)}) as r:
                if r.status == 204 and "Media-Id" in r.headers:
                    media_id = int(r.headers["Media-Id"])
                    break
                assert r.status in (204, 409, 423), await r.text()
        assert media_id is not None
        # which moment the kill landed in: 423s (lease still held), then an offset
        # short of the end (resumed) or the completion run by this instance
        print(f"\nkilled {delay} s after the last PATCH; HEADs on the other instance: "
              f"{[s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]}")
        async with http.get(f"{b.url}/api/media/{media_id}") as r:
            via_tus = await r.json()
        async with http.get(b.url + via_tus["url"]) as r:
            served = await r.read()
    assert hashlib.sha256(served).hexdigest() == via_tus["sha256"] == plain["sha256"]
    for k in ("duration_exact", "dimensions", "file_size"):
        assert via_tus[k] == plain[k], k
    assert set(via_tus["variants"]) == set(plain["variants"]) == {"preview"}
    # Exactly two visible media (the plain one and this); what the dead instance had
    # half made is reclaimed by the living one's heartbeat.
    for _ in range(200):
        rows = json.loads(await fetchval(
            db_dsn, "SELECT json_agg(upload_state) FROM media_files"))
        if rows.count("uploading") == 0:
            break
        await asyncio.sleep(0.1)
    assert sorted(rows) == ["complete", "complete"]
    assert await fetchval(db_dsn, "SELECT count(*) FROM tus_uploads") == 1


@pytest.mark.slow
async def test_completion_streams_the_stored_bytes(procs, db_dsn):
    """Completion reads the received bytes back a few chunks at a time: the server's
    peak memory grows by far less than the file (64 MiB, sent in 8 MiB PATCHes)."""
    import os
    mib = 1024 * 1024
    size = 64 * mib
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_PROCESSING": "false",
                       "MEDIA_MAX_UPLOAD_BYTES": str(size * 2)})
    key = await create_api_key(db_dsn, "write")
    message_id = await new_message(db_dsn)
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    block = os.urandom(mib)
    sha = hashlib.sha256()

    def piece(offset: int, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            pos = offset + len(out)
            chunk = (head + block)[:mib] if pos < mib else block
            start = pos % mib
            out += chunk[start:start + n - len(out)]
        return bytes(out)

    async with aiohttp.ClientSession(headers=bearer(key)) as http:
        async with http.post(f"{srv.url}/api/media/tus/", headers={
                **TUS, "Upload-Length": str(size),
                "Upload-Metadata": meta(message_id=message_id, filename="big.mp4")}) as r:
            path = "/api/media/tus/" + r.headers["Location"].rsplit("/", 1)[1]
        rss_before = srv.rss_kib()
        for offset in range(0, size, 8 * mib):
            data = piece(offset, 8 * mib)
            sha.update(data)

            async def body(data=data):
                for i in range(0, len(data), 256 * 1024):
                    yield data[i:i + 256 * 1024]
            async with http.patch(srv.url + path, data=body(), headers={
                    **TUS, **OCTET, "Upload-Offset": str(offset),
                    "Content-Length": str(len(data))}) as r:
                assert r.status == 204, await r.text()
                media_id = r.headers.get("Media-Id")
            del data
        growth_mib = (srv.hwm_kib() - rss_before) / 1024
        print(f"\n64 MiB through tus: server peak RSS growth {growth_mib:.1f} MiB")
        assert media_id is not None
        async with http.get(f"{srv.url}/api/media/{media_id}") as r:
            body_json = await r.json()
    assert body_json["sha256"] == sha.hexdigest() and body_json["file_size"] == size
    assert growth_mib < 32
