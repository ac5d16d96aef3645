"""Request ids and structured logs: X-Request-ID both ways, JSON lines from a real process."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from server.observability.logformat import JsonFormatter, RequestIdFilter
from server.observability.requestid import accept_request_id, current
from tests.dbutil import bearer, create_api_key
from tests.procs import REPO, Processes


@pytest.mark.parametrize("value, accepted", [
    ("3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b", True),     # a UUID
    ("abc123", True),
    ("Root=1-5759e988-bd862e3fe1be46a994272793", True),  # AWS ALB style
    ("a" * 128, True),
    ("a" * 129, False),                                  # bounded
    ("", False),
    (None, False),
    ("has space", False),
    ("line\nbreak", False),                              # no log injection
    ("quote\"d", False),
    ("-leading-dash", False),
    ("ünicode", False),
    ("x;rm -rf", False),
])
def test_accept_request_id(value, accepted):
    assert accept_request_id(value) == (value if accepted else None)


async def test_request_id_generated_when_absent(client):
    resp = await client.get("/healthz")
    rid = resp.headers["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    again = await client.get("/healthz")
    assert again.headers["X-Request-ID"] != rid


async def test_sane_request_id_echoed_on_success_and_error(client):
    for path in ("/healthz", "/api/media/999999", "/no/such/route"):
        resp = await client.get(path, headers={"X-Request-ID": "req-42.a"})
        assert resp.headers["X-Request-ID"] == "req-42.a", path


async def test_insane_request_id_replaced(client):
    resp = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert resp.headers["X-Request-ID"] != "bad id\twith tab"
    assert accept_request_id(resp.headers["X-Request-ID"])


def test_json_formatter_one_object_with_request_id_and_extras():
    rec = logging.LogRecord("media.x", logging.WARNING, __file__, 1, "hello %s", ("w",), None)
    rec.route = "/api/media/{mediaId}"
    token = current.set("rid-7")
    try:
        RequestIdFilter().filter(rec)
    finally:
        current.reset(token)
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "WARNING" and obj["logger"] == "media.x"
    assert obj["message"] == "hello w" and obj["request_id"] == "rid-7"
    assert obj["route"] == "/api/media/{mediaId}" and obj["time"].endswith("+00:00")


def test_json_log_lines_from_a_real_server(db_dsn):
    procs = Processes()
    try:
        srv = procs.start({"DATABASE_URL": db_dsn, "LOG_FORMAT": "json"})
        key = asyncio.run(create_api_key(db_dsn, "read", name="dashboard"))
        req = urllib.request.Request(srv.url + "/api/media/123456?sig=secret",
                                     headers={"X-Request-ID": "trace-me-1", **bearer(key)})
        try:
            urllib.request.urlopen(req, timeout=5)
        except urllib.error.HTTPError as e:
            assert e.code == 404 and e.headers["X-Request-ID"] == "trace-me-1"
        else:
            raise AssertionError("expected a 404")
        srv.signal_and_wait(2)   # SIGINT: flush and stop
        lines = [ln for ln in srv.stderr().splitlines() if ln.strip()]
        objs = [json.loads(ln) for ln in lines]   # every line is one JSON object
        access = [o for o in objs if o.get("request_id") == "trace-me-1"
                  and o["logger"] == "media.access"]
        assert len(access) == 1, lines
        a = access[0]
        assert a["method"] == "GET" and a["status"] == 404
        assert a["route"] == "/api/media/{mediaId}" and a["path"] == "/api/media/123456"
        assert a["bytes"] > 0 and a["duration_ms"] >= 0 and a["client_addr"] == "127.0.0.1"
        assert a["key_name"] == "dashboard"     # who asked, by the key's name
        assert "secret" not in srv.stderr()   # the query string is never logged
        assert key not in srv.stderr()        # nor the key
    finally:
        procs.cleanup()


def test_text_access_lines_from_a_real_server(db_dsn):
    procs = Processes()
    try:
        srv = procs.start({"DATABASE_URL": db_dsn, "LOG_FORMAT": "text"})
        key = asyncio.run(create_api_key(db_dsn, "read", name="dashboard"))
        for i in range(3):
            req = urllib.request.Request(srv.url + f"/api/media/12345{i}?sig=secret",
                                         headers={"X-Request-ID": f"text-{i}", **bearer(key)})
            try:
                urllib.request.urlopen(req, timeout=5)
            except urllib.error.HTTPError as e:
                assert e.code == 404
        srv.signal_and_wait(2)   # SIGINT: flush and stop
        access = [ln for ln in srv.stderr().splitlines()
                  if " media.access: " in ln and "/readyz" not in ln]
        assert len(access) == 3, srv.stderr()[-2000:]
        for i, line in enumerate(access):
            assert re.fullmatch(
                r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO media\.access: 127\.0\.0\.1 GET "
                rf"/api/media/12345{i} 404 \d+B \d+\.\dms rid=text-{i}", line), line
        assert "secret" not in srv.stderr() and key not in srv.stderr()
    finally:
        procs.cleanup()


def test_multiprocess_metrics_ask_for_the_pid_once_and_still_add_up(tmp_path):
    # Under --workers, prometheus-client's multiprocess mode once called os.getpid() (a
    # system call) at every update: 2.5-4.8% of a small GET's samples. Now each process
    # reads it when its metrics are made; updates must not ask again, and must still
    # land in this process's own files, where /metrics sums them.
    code = """
import os
real_getpid = os.getpid
asked = []
def getpid():
    asked.append(1)
    return real_getpid()
os.getpid = getpid   # before prometheus-client is imported: it keeps a reference
from server.observability.metrics import Metrics
m = Metrics()
before = len(asked)
m.bytes_served.inc(5)
m.requests.labels("/x", "200").observe(0.01)
m.first_byte.labels("/x").observe(0.002)
print(len(asked) - before, real_getpid())
print(m.render().decode())
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 0, res.stderr
    first, text = res.stdout.split("\n", 1)
    asked_on_updates, pid = first.split()
    assert asked_on_updates == "0"
    # (gauge_liveall: media_http_connections, made at zero with the metrics)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"counter_{pid}.db",
                                                          f"gauge_liveall_{pid}.db",
                                                          f"histogram_{pid}.db"]
    assert "media_served_bytes_total 5.0" in text
    assert 'media_http_request_seconds_count{route="/x",status="200"} 1.0' in text
