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

from tests.dbutil import bearer, create_api_key, fetchval
from tests.media import av_sample
from tests.procs import Processes

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def procs():
    p = Processes()
    try:
        yield p
    finally:
        p.cleanup()


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
    message_id = await fetchval(db_dsn, "INSERT INTO messages DEFAULT VALUES RETURNING id")
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
