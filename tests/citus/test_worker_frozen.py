"""A worker that stops answering without closing its connections (frozen: SIGSTOP):
a request that needs it ends with 503 and Retry-After once DB_COMMAND_TIMEOUT_SECONDS
has run out, rather than hanging; after it thaws, it is served again."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import signal

import psutil

from tests.apps import build_app, start_client
from tests.citus.test_distribute import _upload_raw
from tests.citus.test_worker_failure import _worker_port_of
from tests.dbutil import create_api_key, new_message
from tests.media import jpeg_bytes


def _processes(datadir) -> list[psutil.Process]:
    postmaster = psutil.Process(int((datadir / "postmaster.pid").read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


async def test_a_frozen_worker_gives_503_not_a_hang(citus, distributed, citus_settings):
    settings = dataclasses.replace(citus_settings, db_command_timeout=2.0)
    key = await create_api_key(distributed.dsn, "admin")
    client = await start_client(build_app(settings, distributed.dsn), key=key)
    try:
        data = jpeg_bytes(5_000, seed=300)
        media = await _upload_raw(client, await new_message(distributed.dsn), data)
        port = await _worker_port_of(distributed.dsn, media["id"])
        worker = next(w for w in citus.workers if w.port == port)
        frozen = _processes(worker.datadir)
        for p in frozen:
            os.kill(p.pid, signal.SIGSTOP)
        try:
            # The bound only keeps a regression from hanging the suite.
            resp = await asyncio.wait_for(client.get(media["url"]), 120)
            assert resp.status == 503, await resp.text()
            assert "Retry-After" in resp.headers
        finally:
            for p in frozen:
                os.kill(p.pid, signal.SIGCONT)
        resp = await client.get(media["url"])
        assert resp.status == 200 and await resp.read() == data
    finally:
        await client.close()
