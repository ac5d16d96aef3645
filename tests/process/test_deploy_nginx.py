"""deploy/nginx-media-store.conf, exercised: a real nginx in front of the real service.

The shipped file is used as it is, with only its upstream address, listen port and cache
path rewritten for loopback and a temporary folder. Skipped, visibly, where nginx is not
installed (.ci/run installs it when it can).

Both access modes: public (MEDIA_PUBLIC_READ=true: media cached by slices) and the
default signed mode, where a private response must never come from nginx's cache.
Uploads send an admin key; reads go with no key, as phones and browsers read.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest

from server.store.media import STORE
from tests.dbutil import bearer
from tests.media import jpeg_bytes
from tests.procs import REPO, free_port

SITE = REPO / "deploy" / "nginx-media-store.conf"
SLICE = 1024 * 1024
LIMIT = 6 * 1024 * 1024


def nginx_binary() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                     else None)
    if path is None:
        pytest.skip("nginx is not installed")
    return path


def site_conf(upstream_port: int, listen_port: int, cache: Path) -> str:
    text = SITE.read_text()
    for old, new in [("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
                     ("listen 80;", f"listen 127.0.0.1:{listen_port};"),
                     ("/var/cache/nginx/media-store", str(cache))]:
        assert text.count(old) == 1, f"deploy config no longer has {old!r}"
        text = text.replace(old, new)
    return text


def main_conf(tmp: Path) -> str:
    # Run as root (this machine, CI), workers must be allowed into the temp folder.
    user = "user root;" if os.geteuid() == 0 else ""
    temps = " ".join(f"{k}_temp_path {tmp}/{k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    {temps}
    include {tmp}/site.conf;
}}
"""


@dataclasses.dataclass
class Proxied:
    base: str
    upstream_seen: list[tuple[str | None, int, int | None]]   # (Range, status, length)
    message_id: int
    key: str


@pytest.fixture
async def proxied(server_for, tmp_path, admin_key):
    """nginx in front of the service in public mode."""
    async for p in _proxied(server_for, tmp_path, admin_key, security__public_read=True):
        yield p


@pytest.fixture
async def proxied_private(server_for, tmp_path, admin_key):
    """nginx in front of the service in the default, signed mode."""
    async for p in _proxied(server_for, tmp_path, admin_key):
        yield p


async def _proxied(server_for, tmp_path, admin_key, **changes):
    nginx = nginx_binary()
    seen: list[tuple[str | None, int, int | None]] = []

    async def record(request, response):
        if request.path.startswith("/api/media/serve/"):
            seen.append((request.headers.get("Range"), response.status,
                         response.content_length))

    client = await server_for(setup=lambda app: app.on_response_prepare.append(record),
                              uploads__max_bytes=LIMIT, **changes)
    upstream = client.server
    message_id = await client.app[STORE].create_message()
    port = free_port()
    (tmp_path / "site.conf").write_text(site_conf(upstream.port, port, tmp_path / "cache"))
    (tmp_path / "nginx.conf").write_text(main_conf(tmp_path))
    proc = await asyncio.create_subprocess_exec(
        nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
        "-e", str(tmp_path / "error.log"))
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                if proc.returncode is not None:
                    pytest.fail((tmp_path / "error.log").read_text())
                await asyncio.sleep(0.05)
        yield Proxied(f"http://127.0.0.1:{port}", seen, message_id, admin_key)
    finally:
        proc.terminate()
        await proc.wait()


async def upload(session, p: Proxied, data: bytes) -> dict:
    async def body():   # chunked: streamed through nginx, not spooled
        for i in range(0, len(data), 64 * 1024):
            yield data[i:i + 64 * 1024]

    async with session.post(f"{p.base}/api/media/upload-production",
                            params={"message_id": str(p.message_id), "filename": "a.jpg"},
                            data=body(),
                            headers={"Content-Type": "image/jpeg", **bearer(p.key)}) as r:
        assert r.status == 201, await r.text()
        return await r.json()


async def test_upload_streams_through_and_media_is_cached_by_slices(proxied):
    data = jpeg_bytes(3 * SLICE + 12_345)
    async with aiohttp.ClientSession() as s:
        meta = await upload(s, proxied, data)
        url = proxied.base + meta["url"]
        async with s.get(url) as r:
            assert r.status == 200
            assert await r.read() == data
            assert r.headers["X-Cache-Status"] == "MISS"
            assert r.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        # The service was asked for 1 MiB slices, never the whole file.
        assert proxied.upstream_seen, "nothing reached the service"
        assert all(rng and rng.startswith("bytes=") and status == 206 and n <= SLICE
                   for rng, status, n in proxied.upstream_seen), proxied.upstream_seen
        asked = len(proxied.upstream_seen)
        async with s.get(url) as r:
            assert r.status == 200
            assert await r.read() == data
            # From the cache, each slice revalidated first (a 304 each, see below).
            assert r.headers["X-Cache-Status"] == "REVALIDATED"
        # No bytes fetched again: at most a 304 per slice.
        assert all(status == 304 for _, status, _ in proxied.upstream_seen[asked:]), \
            proxied.upstream_seen[asked:]


@pytest.mark.parametrize("rng,start,end", [
    pytest.param("bytes=0-1", 0, 1, id="ios-first-request"),
    pytest.param(f"bytes={SLICE - 2}-{SLICE + 2}", SLICE - 2, SLICE + 2, id="across-slices"),
    pytest.param("bytes=-100", None, None, id="suffix"),
    pytest.param(f"bytes={2 * SLICE}-", 2 * SLICE, None, id="open-ended-seek"),
])
async def test_ranges_through_the_cache(proxied, rng, start, end):
    data = jpeg_bytes(3 * SLICE + 999)
    async with aiohttp.ClientSession() as s:
        meta = await upload(s, proxied, data)
        async with s.get(proxied.base + meta["url"], headers={"Range": rng}) as r:
            body = await r.read()
            assert r.status == 206
            if start is None:
                start = len(data) - 100
            end = len(data) - 1 if end is None else end
            assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
            assert body == data[start:end + 1]
            assert r.headers["ETag"] == f'"{meta["sha256"]}"'


async def test_conditional_get_through_the_proxy_is_304(proxied):
    data = jpeg_bytes(50_000)
    async with aiohttp.ClientSession() as s:
        meta = await upload(s, proxied, data)
        url = proxied.base + meta["url"]
        async with s.get(url) as r:
            etag = r.headers["ETag"]
            await r.read()
        async with s.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert await r.read() == b""


async def test_oversized_upload_gets_the_service_json_413(proxied):
    async with aiohttp.ClientSession() as s:
        async def body():
            data = jpeg_bytes(LIMIT + SLICE)
            for i in range(0, len(data), 64 * 1024):
                yield data[i:i + 64 * 1024]

        async with s.post(f"{proxied.base}/api/media/upload-production",
                          params={"message_id": str(proxied.message_id)}, data=body(),
                          headers={"Content-Type": "image/jpeg", **bearer(proxied.key)}) as r:
            assert r.status == 413
            assert (await r.json())["error"] == "payload_too_large"


async def test_errors_are_not_cached(proxied):
    async with aiohttp.ClientSession() as s:
        for _ in range(2):
            async with s.get(f"{proxied.base}/api/media/serve/424242") as r:
                assert r.status == 404
                assert (await r.json())["error"] == "media_not_found"
                assert r.headers.get("X-Cache-Status") != "HIT"
    assert len([x for x in proxied.upstream_seen if x[1] == 404]) == 2


async def test_a_quarantine_or_a_delete_is_never_answered_from_the_cache(proxied):
    data = jpeg_bytes(2 * SLICE + 55)
    async with aiohttp.ClientSession() as s:
        meta = await upload(s, proxied, data)
        url = proxied.base + meta["url"]
        for _ in range(2):   # cached now
            async with s.get(url) as r:
                assert r.status == 200 and await r.read() == data
                assert "X-Accel-Expires" not in r.headers   # nginx keeps it to itself
                assert r.headers["Cache-Control"].startswith("public")
        async with s.post(f"{proxied.base}/api/media/{meta['id']}/quarantine",
                          json={"reason": "test"}, headers=bearer(proxied.key)) as r:
            assert r.status == 201

        async def status() -> int:
            async with s.get(url) as r:
                await r.read()
                return r.status
        # nginx holds the slices as already stale: the very next read revalidates them
        # and gets the 451, never a cached copy.
        assert await status() == 451
        async with s.head(url) as r:
            assert r.status == 451
        async with s.delete(f"{proxied.base}/api/media/{meta['id']}/quarantine",
                            headers=bearer(proxied.key)) as r:
            assert r.status == 204
        assert await status() == 200
        async with s.delete(f"{proxied.base}/api/media/{meta['id']}",
                            headers=bearer(proxied.key)) as r:
            assert r.status == 204
        assert await status() == 404


# -- the default, signed mode ------------------------------------------------------------

async def test_signed_reads_are_never_answered_from_the_cache(proxied_private):
    p = proxied_private
    data = jpeg_bytes(2 * SLICE + 777)
    async with aiohttp.ClientSession() as s:
        meta = await upload(s, p, data)
        signed = p.base + meta["url"]
        assert "&sig=" in signed
        for _ in range(2):
            async with s.get(signed) as r:
                assert r.status == 200
                assert await r.read() == data
                assert r.headers["Cache-Control"].startswith("private, max-age=")
                assert r.headers.get("X-Cache-Status") != "HIT"
        async with s.get(signed, headers={"Range": f"bytes={SLICE - 5}-{SLICE + 5}"}) as r:
            assert r.status == 206
            assert await r.read() == data[SLICE - 5:SLICE + 6]
        # Every slice of every read was checked by the service (3 slices, 2 reads, and
        # the range's 2 slices).
        assert len(p.upstream_seen) == 3 + 3 + 2, p.upstream_seen
        # Without the signature, or with another one: refused by the service, no bytes,
        # whatever nginx fetched before.
        bare = p.base + meta["url"].split("?")[0]
        for url, status in [(bare, 401), (signed[:-3] + "AAA", 403),
                            (signed.replace("exp=", "exp=1"), 403)]:
            async with s.get(url) as r:
                assert r.status == status, url
                assert r.headers.get("X-Cache-Status") != "HIT"
                assert (await r.read()) != data


async def test_keyed_reads_bypass_the_cache_in_public_mode(proxied):
    data = jpeg_bytes(50_000)
    async with aiohttp.ClientSession() as s:
        meta = await upload(s, proxied, data)
        for _ in range(2):
            async with s.get(proxied.base + meta["url"], headers=bearer(proxied.key)) as r:
                assert r.status == 200 and await r.read() == data
                assert r.headers["X-Cache-Status"] == "BYPASS"


async def test_upload_without_a_key_is_refused_through_the_proxy(proxied_private):
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{proxied_private.base}/api/media/upload-production",
                          params={"message_id": str(proxied_private.message_id)},
                          data=jpeg_bytes(50_000),
                          headers={"Content-Type": "image/jpeg"}) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await r.json())["error"] == "unauthorized"


# -- limits (issue 6) --------------------------------------------------------------------

ATTACKER = "127.0.0.2"   # loopback too: another client address for nginx's per-address limits


async def _trickling_upload(base: str, message_id: int, source: str):
    """An upload that sends its headers and a first piece, then holds on."""
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write((f"POST /api/media/upload-production?message_id={message_id} HTTP/1.1\r\n"
                  "Host: t\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
                  ).encode())
    piece = jpeg_bytes(20_000)
    writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    await writer.drain()
    return reader, writer


def test_shipped_config_sets_the_limits():
    text = SITE.read_text()
    for directive in ("limit_conn_zone $binary_remote_addr", "limit_conn media_store_conn",
                      "limit_conn media_store_uploads", "client_header_timeout",
                      "client_body_timeout", "send_timeout", "limit_conn_status 429"):
        assert directive in text, directive


async def test_one_address_cannot_take_every_upload_and_others_are_served(proxied):
    """17 uploads held open from one address: the 17th is refused by nginx (JSON 429),
    while a client from another address is still served."""
    conns = []
    try:
        for _ in range(16):
            conns.append(await _trickling_upload(proxied.base, proxied.message_id, ATTACKER))
        await asyncio.sleep(0.5)   # nginx has passed them upstream: they count now
        reader, writer = await _trickling_upload(proxied.base, proxied.message_id, ATTACKER)
        conns.append((reader, writer))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 429"), head
        assert b"Retry-After: 5" in head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        assert json.loads(body)["error"] == "too_many_connections"
        async with aiohttp.ClientSession() as s:   # from 127.0.0.1
            async with s.get(f"{proxied.base}/healthz") as r:
                assert r.status == 200
            meta = await upload(s, proxied, jpeg_bytes(30_000))
            assert meta["id"]
    finally:
        for _, w in conns:
            w.close()
