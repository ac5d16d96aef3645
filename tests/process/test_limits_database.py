"""A hung database (issue 6): PostgreSQL frozen with SIGSTOP under a real server process.

The test starts its own embedded PostgreSQL in a temporary folder (nothing else uses
it), runs ``python run.py`` on it, freezes every postgres process of that folder, and
checks what must hold: /readyz says 503 within its 2 s, a request gets 503 with
Retry-After once DB_COMMAND_TIMEOUT_SECONDS passes (never a hang, never a 500), and
after SIGCONT everything works again without a restart.
"""
from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import psutil
import pytest

from server.cli import embedded_pg
from tests.media import jpeg_bytes
from tests.procs import postgres_processes, run_cli

COMMAND_TIMEOUT = 2


def _request(url: str, *, data: bytes | None = None, headers: dict | None = None,
             timeout: float) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def test_frozen_database_gives_503_on_time_and_recovers(procs):
    data_dir = procs.data_dir()
    pg = embedded_pg.start(data_dir)
    frozen: list[psutil.Process] = []
    try:
        env = {"DATABASE_URL": pg.get_uri(),
               "DB_COMMAND_TIMEOUT_SECONDS": str(COMMAND_TIMEOUT),
               "DB_POOL_ACQUIRE_TIMEOUT": str(COMMAND_TIMEOUT)}
        res = run_cli(["create-message"], env)
        assert res.returncode == 0, res.stderr
        message_id = int(res.stdout.strip())
        res = run_cli(["keys", "create", "backend"], env)
        assert res.returncode == 0, res.stderr
        auth = {"Authorization": f"Bearer {res.stdout.strip()}"}
        srv = procs.start(env)
        data = jpeg_bytes(50_000, seed=1)
        status, _, body = _request(
            f"{srv.url}/api/media/upload-production?message_id={message_id}",
            data=data, headers={"Content-Type": "image/jpeg", **auth},
            timeout=30)
        assert status == 201, body
        media_id = json.loads(body)["id"]

        # The postmaster and every backend (their titles no longer name the folder).
        masters = postgres_processes(data_dir)
        assert masters, "no postgres processes found for the private data folder"
        frozen = masters + [c for m in masters for c in m.children(recursive=True)]
        _signal_all(frozen, signal.SIGSTOP)

        # Readiness answers within its own 2 s (the client gives it a little slack on
        # this shared machine), and says 503.
        t0 = time.monotonic()
        status, headers, body = _request(f"{srv.url}/readyz", timeout=5)
        assert status == 503, body
        assert "Retry-After" in headers
        assert time.monotonic() - t0 < 5

        # A request is bounded by DB_COMMAND_TIMEOUT_SECONDS (or the pool's acquire
        # timeout): a JSON 503 with Retry-After, not a hang or a 500.
        for path in (f"/api/media/{media_id}", f"/api/messages/{message_id}/media"):
            status, headers, body = _request(srv.url + path, headers=auth,
                                             timeout=COMMAND_TIMEOUT * 4)
            assert status == 503, (path, body)
            assert headers.get("Retry-After", "").isdigit()
            assert json.loads(body)["error"] == "unavailable"
        assert srv.proc.poll() is None

        _signal_all(frozen, signal.SIGCONT)
        frozen = []
        # Recovers by itself: no restart of anything.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _request(f"{srv.url}/readyz", timeout=5)[0] == 200:
                break
            time.sleep(0.2)
        else:
            pytest.fail("/readyz never came back after SIGCONT")
        status, _, body = _request(f"{srv.url}/api/media/{media_id}", headers=auth, timeout=10)
        assert status == 200 and json.loads(body)["id"] == media_id
        status, _, body = _request(f"{srv.url}/api/media/serve/{media_id}", headers=auth,
                                   timeout=10)
        assert status == 200 and body == data
        assert "Traceback" not in srv.stderr()
    finally:
        _signal_all(frozen, signal.SIGCONT)
        procs.cleanup()
        embedded_pg.stop(pg)
