"""PostgreSQL restarted under load: requests during the outage get a quick 503 with
Retry-After, /readyz says not ready, and the service recovers by itself when the
database is back, without a restart of its own."""
from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request

import pytest

from server.cli.migrate import apply_migrations
from tests.dbutil import create_api_key, new_message
from tests.media import jpeg_bytes
from tests.pgcluster import Cluster, machine_bindir
from tests.procs import Processes
from tests.process.test_process import _post_sync

pytestmark = pytest.mark.slow


def _get(url: str, timeout: float = 10) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


async def test_postgres_restart_under_load(tmp_path):
    bindir = machine_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql to restart")
    cluster = Cluster(bindir)
    procs = Processes()
    stop_load = threading.Event()
    try:
        pg = cluster.primary()
        apply_migrations(pg.dsn)
        srv = procs.start({"DATABASE_URL": pg.dsn, "DB_POOL_ACQUIRE_TIMEOUT": "2",
                           "DB_COMMAND_TIMEOUT_SECONDS": "3"})
        message_id = await new_message(pg.dsn)
        key = await create_api_key(pg.dsn, "write")
        data = jpeg_bytes(120_000)
        status, meta = await asyncio.to_thread(_post_sync, srv, message_id, data,
                                               "image/jpeg", "p.jpg", key)
        assert status == 201
        url = srv.url + meta["url"]

        # Load: readers in a loop for as long as the test runs (bounded by the event).
        outcomes: list[int] = []

        def reader():
            while not stop_load.is_set():
                outcomes.append(_get(url)[0])
        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)

        await asyncio.to_thread(pg.stop, "fast")
        down_at = time.monotonic()
        # Requests during the outage: a quick 503 that says when to come back.
        await asyncio.sleep(0.5)
        for _ in range(3):
            started = time.monotonic()
            status, body, headers = await asyncio.to_thread(_get, url)
            assert status == 503, body
            assert int(headers["Retry-After"]) >= 1
            assert time.monotonic() - started < 5
            ready, _, _ = await asyncio.to_thread(_get, srv.url + "/readyz", 5)
            assert ready == 503
        assert time.monotonic() - down_at < 30

        await asyncio.to_thread(pg.start)
        # Back by itself: no restart of the service.
        deadline = time.monotonic() + 30
        while True:
            status, body, _ = await asyncio.to_thread(_get, url)
            if status == 200:
                break
            assert time.monotonic() < deadline, f"not recovered: {status} {body[:200]!r}"
            await asyncio.sleep(0.2)
        assert body == data
        assert (await asyncio.to_thread(_get, srv.url + "/readyz"))[0] == 200
        stop_load.set()
        for t in threads:
            t.join(30)
        # Under load, nothing but 200s and 503s: no 500, no hang.
        errors = srv.stderr()
        assert set(outcomes) <= {200, 503}, errors[errors.find("ERROR"):][:4000]
        assert 200 in outcomes and 503 in outcomes
        assert srv.proc.poll() is None
        assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]
    finally:
        stop_load.set()
        procs.cleanup()
        cluster.close()
