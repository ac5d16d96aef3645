"""``serve --workers N``: N processes on one port, one embedded PostgreSQL, metrics that
add up across workers, connections spread evenly over them, a dead worker replaced,
SIGTERM stopping everything."""
from __future__ import annotations

import asyncio
import http.client
import json
import re
import signal
import time

import psutil
import pytest

from tests.dbutil import bearer, create_api_key, new_message
from tests.media import jpeg_bytes
from tests.procs import postgres_processes, wait_no_postgres

pytestmark = pytest.mark.slow


def _workers(pid: int) -> list[psutil.Process]:
    found = []
    for c in psutil.Process(pid).children():
        try:
            if any("spawn_main" in part for part in c.cmdline()):
                found.append(c)
        except psutil.Error:   # a worker just killed and not reaped yet
            pass
    return found


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    assert want is not None
    return total


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_workers_share_a_port_and_one_embedded_postgres(procs):
    data_dir = procs.data_dir()
    srv = procs.start({"MEDIA_DATA_DIR": str(data_dir), "MEDIA_HEARTBEAT_SECONDS": "0.5",
                       "MEDIA_INSTANCE_DEAD_SECONDS": "2"}, ("serve", "--workers", "2"))
    _wait(lambda: len(_workers(srv.pid)) == 2, 30, "two workers")
    workers = {p.pid for p in _workers(srv.pid)}
    postmasters = [p for p in postgres_processes(data_dir) if "-D" in p.cmdline()]
    assert len(postmasters) == 1, postmasters   # started once, by the supervisor

    # Both workers answer on the one port (each is an instance with its own heartbeat).
    for _ in range(40):
        assert srv.get("/healthz")[0] == 200
    # /metrics from whichever worker answers counts every worker's requests.
    status, body = srv.get("/metrics")
    assert status == 200
    text = body.decode()
    assert _metric(text, "media_http_request_seconds_count", route="/healthz") >= 40
    assert _metric(text, "media_db_pool_connections", state="idle") >= 1

    # A worker that dies is replaced (after the crash-loop guard's few seconds).
    time.sleep(5.5)
    victim = next(iter(workers))
    psutil.Process(victim).kill()
    _wait(lambda: len(_workers(srv.pid)) == 2 and victim not in
          {p.pid for p in _workers(srv.pid)}, 30, "a replacement worker")
    _wait(lambda: srv.get("/healthz")[0] == 200, 10, "service after the replacement")

    assert srv.signal_and_wait(signal.SIGTERM, timeout=60) == 0
    assert wait_no_postgres(data_dir) == []
    for pid in workers - {victim}:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


def _open(srv, n: int) -> list[http.client.HTTPConnection]:
    """``n`` kept-alive connections, each with a request answered."""
    conns = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        c.request("GET", "/healthz")
        r = c.getresponse()
        assert r.status == 200
        r.read()
        conns.append(c)
    return conns


def _served_by(srv) -> dict[int, set[int]]:
    """Worker pid → the client ports of the connections it holds."""
    held = {}
    for w in _workers(srv.pid):
        held[w.pid] = {c.raddr.port for c in w.net_connections(kind="tcp")
                       if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == srv.port}
    return held


def _wait_both_serving(srv) -> None:
    """Until both workers take connections (a worker gets them once it is ready)."""
    def both_serving() -> bool:
        probe = _open(srv, 4)
        busy = [len(ports) for ports in _served_by(srv).values()]
        for c in probe:
            c.close()
        _wait(lambda: not any(_served_by(srv).values()), 10, "probes closed")
        return busy.count(0) == 0
    _wait(both_serving, 30, "both workers serving")


def test_connections_are_spread_evenly_over_the_workers(procs, db_dsn):
    # With SO_REUSEPORT the kernel split 32 connections 19/13 or 21/11 by a hash of
    # their ports; handed over by the supervisor, they go to the emptier worker.
    srv = procs.start({"DATABASE_URL": db_dsn}, ("serve", "--workers", "2"))
    _wait(lambda: len(_workers(srv.pid)) == 2, 30, "two workers")

    _wait_both_serving(srv)

    conns = _open(srv, 32)
    held = _served_by(srv)
    assert sorted(len(p) for p in held.values()) == [16, 16], held
    # /metrics shows the split, one sample per worker (the scrape's own connection
    # makes one of them 17).
    text = srv.get("/metrics")[1].decode()
    per_worker = {int(pid): float(v) for pid, v in
                  re.findall(r'^media_http_connections\{pid="(\d+)"\} (\S+)$', text, re.M)}
    assert set(per_worker) == set(held) and sorted(per_worker.values()) == [16, 17], \
        per_worker
    # Ten of one worker's connections close: the next ten all go to that worker.
    first, second = held
    closing = [c for c in conns if c.sock.getsockname()[1] in held[first]][:10]
    for c in closing:
        c.close()
    _wait(lambda: len(_served_by(srv)[first]) == 6, 10, "ten connections closed")
    conns += _open(srv, 10)
    held = _served_by(srv)
    assert len(held[first]) == len(held[second]) == 16, held
    for c in conns:
        c.close()
    assert srv.signal_and_wait(signal.SIGTERM, timeout=60) == 0
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


def test_every_workers_store_figures_reach_metrics_whichever_worker_is_scraped(procs,
                                                                              db_dsn):
    # A scraper's kept-alive connection stays with one worker; the others' cache and
    # pool figures were copied in only when they answered a scrape themselves.
    srv = procs.start({"DATABASE_URL": db_dsn}, ("serve", "--workers", "2"))
    _wait(lambda: len(_workers(srv.pid)) == 2, 30, "two workers")
    key = asyncio.run(create_api_key(db_dsn, "write"))
    message_id = asyncio.run(new_message(db_dsn))
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    c.request("POST", f"/api/media/upload-production?message_id={message_id}&filename=p.jpg",
              body=jpeg_bytes(), headers={"Content-Type": "image/jpeg", **bearer(key)})
    r = c.getresponse()
    body = r.read()
    assert r.status == 201, body
    url = json.loads(body)["url"]
    c.close()

    _wait_both_serving(srv)

    # One connection on each worker (the supervisor hands the second to the emptier),
    # each asking for the photo three times: a miss, then two hits, per worker.
    conns = _open(srv, 2)
    assert sorted(len(p) for p in _served_by(srv).values()) == [1, 1]
    for conn in conns:
        for _ in range(3):
            conn.request("GET", url)
            r = conn.getresponse()
            r.read()
            assert r.status == 200
    time.sleep(2.5)   # past the workers' sampling (server/workers/sampling.py)

    # Scraped on one of those connections, again and again: always the same worker.
    for _ in range(2):
        conns[0].request("GET", "/metrics")
        r = conns[0].getresponse()
        text = r.read().decode()
    assert _metric(text, "media_metadata_cache_total", result="hit") == 4
    assert _metric(text, "media_metadata_cache_total", result="miss") == 2
    for conn in conns:
        conn.close()
    assert srv.signal_and_wait(signal.SIGTERM, timeout=60) == 0
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


def test_workers_take_the_secret_settings_along(procs, db_dsn):
    # DATABASE_URL and MEDIA_SIGNING_KEYS are Secrets, which refuse pickling; the
    # workers must still get them (they once died at start whenever either was set).
    key = "k" * 32
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_SIGNING_KEYS": key},
                      ("serve", "--workers", "2"))
    _wait(lambda: len(_workers(srv.pid)) == 2, 30, "two workers")
    for _ in range(10):
        assert srv.get("/readyz")[0] == 200
    assert srv.signal_and_wait(signal.SIGTERM, timeout=60) == 0
    assert key not in srv.stderr() and "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


def test_workers_stop_when_the_supervisor_is_killed_outright(procs, db_dsn):
    # SIGKILL gives the supervisor no chance to stop its workers; they once served on,
    # orphaned, holding the port beside the next start's workers.
    srv = procs.start({"DATABASE_URL": db_dsn}, ("serve", "--workers", "2"))
    _wait(lambda: len(_workers(srv.pid)) == 2, 30, "two workers")
    workers = _workers(srv.pid)
    srv.proc.kill()
    srv.proc.wait(10)
    _, alive = psutil.wait_procs(workers, timeout=20)
    assert alive == [], [p.pid for p in alive]
    # By SIGTERM, the graceful way (no traceback), and nothing listens any more.
    assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]
    import socket
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()


def test_workers_refuse_a_port_held_by_something_else(procs, db_dsn):
    import socket
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        from tests.procs import run_cli
        res = run_cli(["serve", "--workers", "2"],
                      {"DATABASE_URL": db_dsn, "HOST": "127.0.0.1", "PORT": str(port)})
        assert res.returncode == 1
        assert "cannot listen on 127.0.0.1" in res.stderr and "Traceback" not in res.stderr
    finally:
        holder.close()


