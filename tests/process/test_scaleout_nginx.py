"""Two server processes on one database behind a real nginx ``upstream`` of both (the
shipped deploy config): upload through one, read, list and delete through the other,
and a delete is seen at once by the instance that did not make it."""
from __future__ import annotations

import asyncio
import re
import subprocess

import aiohttp
import pytest

from tests.dbutil import bearer, create_api_key, new_message
from tests.media import jpeg_bytes
from tests.procs import Processes, free_port
from tests.process.test_deploy_nginx import main_conf, nginx_binary, site_conf

pytestmark = pytest.mark.slow


def _upstream_of_both(conf: str, first: int, second: int) -> str:
    one = f"server 127.0.0.1:{first};"
    assert conf.count(one) == 1
    return conf.replace(one, f"{one}\n    server 127.0.0.1:{second};")


def _served_by(srv, media_id: int) -> int:
    """GETs of the media's metadata in a server's access log."""
    return len(re.findall(rf"GET /api/media/{media_id} 200", srv.stderr()))


async def test_two_instances_behind_nginx_share_everything(db_dsn, tmp_path):
    nginx = nginx_binary()
    procs = Processes()
    proc = None
    try:
        # Metadata cached for a long time on both: only the deletion feed can make the
        # second instance notice a delete at once.
        env = {"DATABASE_URL": db_dsn, "MEDIA_METADATA_CACHE_SECONDS": "300"}
        a, b = procs.start(env), procs.start(env)
        port = free_port()
        (tmp_path / "site.conf").write_text(
            _upstream_of_both(site_conf(a.port, port, tmp_path / "cache"), a.port, b.port))
        (tmp_path / "nginx.conf").write_text(main_conf(tmp_path))
        proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                                 "-e", str(tmp_path / "error.log")])
        front = f"http://127.0.0.1:{port}"
        key = await create_api_key(db_dsn, "write")
        message_id = await new_message(db_dsn)
        data = jpeg_bytes(200_000)
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(front + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)

            # Upload through A.
            async with s.post(f"{a.url}/api/media/upload-production",
                              params={"message_id": str(message_id), "filename": "p.jpg"},
                              data=data, headers={"Content-Type": "image/jpeg",
                                                  **bearer(key)}) as r:
                assert r.status == 201, await r.text()
                meta = await r.json()
            # Read, list through B.
            async with s.get(b.url + meta["url"]) as r:
                assert r.status == 200 and await r.read() == data
                etag = r.headers["ETag"]
            async with s.get(f"{b.url}/api/messages/{message_id}/media",
                             headers=bearer(key)) as r:
                assert r.status == 200
                assert [m["id"] for m in (await r.json())["items"]] == [meta["id"]]
            # Through nginx, requests reach both instances (metadata: never cached by
            # nginx, so every request goes upstream), and the bytes come back whole.
            async with s.get(front + meta["url"]) as r:
                assert r.status == 200 and await r.read() == data
            for _ in range(12):
                async with s.get(f"{front}/api/media/{meta['id']}", headers=bearer(key)) as r:
                    assert r.status == 200 and (await r.json())["sha256"] == meta["sha256"]
            await asyncio.sleep(0.3)   # access lines are flushed every 50 ms
            assert _served_by(a, meta["id"]) >= 1 and _served_by(b, meta["id"]) >= 2

            # A has the file's metadata cached; delete through B.
            async with s.head(a.url + meta["url"]) as r:
                assert r.status == 200
            async with s.delete(f"{b.url}/api/media/{meta['id']}", headers=bearer(key)) as r:
                assert r.status == 204
            # On A, at once: HEAD, a revalidation and GET all say it is gone.
            for _ in range(40):
                async with s.head(a.url + meta["url"]) as r:
                    if r.status == 404:
                        break
                await asyncio.sleep(0.05)
            async with s.head(a.url + meta["url"]) as r:
                assert r.status == 404
            async with s.get(a.url + meta["url"], headers={"If-None-Match": etag}) as r:
                assert r.status == 404
            async with s.get(a.url + meta["url"]) as r:
                assert r.status == 404
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        procs.cleanup()
