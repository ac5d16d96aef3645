"""The outbox across real server processes (``python run.py``) and the fake Z-API, which
runs here in the test's event loop: a server SIGKILLed mid-queue and replaced loses
and duplicates nothing; two servers on one outbox never send a row twice."""
from __future__ import annotations

import asyncio
import collections
import os

import aiohttp
import pytest

from tests import fake_zapi
from tests.dbutil import bearer, create_api_key, fetchval, new_message
from tests.fake_zapi import FakeZapi
from tests.procs import Processes
from tests.zapi_util import FINAL, media_samples

PHONE = "5511999999999"
WEBHOOK_SECRET = "hook-Secret-0123456789abcdef"


def server_env(db_dsn: str, fake: FakeZapi, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": db_dsn, "MEDIA_AUTO_MIGRATE": "false",
            "ZAPI_BASE_URL": f"http://127.0.0.1:{fake.server.port}",
            "ZAPI_INSTANCE_ID": fake_zapi.INSTANCE, "ZAPI_TOKEN": fake_zapi.TOKEN,
            "ZAPI_CLIENT_TOKEN": fake_zapi.CLIENT_TOKEN, "ZAPI_TIMEOUT_SECONDS": "2",
            "ZAPI_LEASE_SECONDS": "3", "ZAPI_RETRY_BASE_SECONDS": "0.1",
            "MEDIA_HEARTBEAT_SECONDS": "0.5", "LOG_LEVEL": "INFO",
            "MEDIA_PROCESSING": "false",   # stand-in samples, stored as sent
            **extra}


async def start(procs: Processes, env: dict[str, str]):
    # In a thread: waiting for readiness must not stop this loop, where the fake answers.
    return await asyncio.to_thread(procs.start, env)


async def queue_sends(http: aiohttp.ClientSession, base: str, message_id: int,
                      n: int, tag: str = "d") -> dict[str, int]:
    data, ctype, _ = media_samples()["image"]
    async with http.post(f"{base}/api/media/upload-production?message_id={message_id}",
                         data=data, headers={"Content-Type": ctype}) as r:
        assert r.status == 201
        media_id = (await r.json())["id"]
    ids = {}
    for i in range(n):
        async with http.post(f"{base}/api/media/{media_id}/send",
                             json={"phone": PHONE, "caption": f"{tag}{i}"}) as r:
            assert r.status == 202
            ids[f"{tag}{i}"] = (await r.json())["delivery_id"]
    return ids


async def settle(http: aiohttp.ClientSession, base: str, ids: dict[str, int],
                 timeout: float = 60) -> dict[str, dict]:
    """Every delivery's final JSON, by caption."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    out: dict[str, dict] = {}
    while len(out) < len(ids):
        for caption, d in ids.items():
            if caption in out:
                continue
            async with http.get(f"{base}/api/deliveries/{d}") as r:
                body = await r.json()
            if body["state"] in FINAL:
                out[caption] = body
        if loop.time() > deadline:
            raise AssertionError(f"not settled: {set(ids) - set(out)}")
        await asyncio.sleep(0.1)
    return out


@pytest.mark.slow
async def test_killed_mid_queue_then_restarted_loses_and_duplicates_nothing(
        db_dsn, fake, procs):
    fake.delay = 0.3            # each send takes a while, so the kill lands mid-queue
    # A lease far longer than the settle timeout below: the dead server's claim can only
    # be recovered through its stopped heartbeat.
    env = server_env(db_dsn, fake, ZAPI_LEASE_SECONDS="300", MEDIA_INSTANCE_DEAD_SECONDS="2")
    victim = await start(procs, env)
    message_id = await new_message(db_dsn)
    async with aiohttp.ClientSession(headers=bearer(await create_api_key(db_dsn))) as http:
        ids = await queue_sends(http, victim.url, message_id, 12)
        while len(fake.received) < 4:
            await asyncio.sleep(0.02)
        victim.proc.kill()                          # SIGKILL: no goodbye
        await asyncio.to_thread(victim.proc.wait, 10)
        seen_at_kill = len(fake.received)
        assert seen_at_kill < 12, "the queue was done before the kill"

        survivor = await start(procs, env)
        final = await settle(http, survivor.url, ids, timeout=45)

    per_caption = collections.Counter(r.body["caption"] for r in fake.received)
    assert max(per_caption.values()) == 1, per_caption          # nothing posted twice
    states = collections.Counter(d["state"] for d in final.values())
    print("states after kill and restart:", dict(states), "received at kill:", seen_at_kill)
    assert set(states) <= {"sent", "unknown"}, states            # nothing lost or failed
    # Only the one request in flight at the kill can be unknown (concurrency 1).
    assert states["unknown"] <= 1 and states["sent"] >= 11
    answered = {r.body["caption"]: r.message_id for r in fake.received}
    for caption, d in final.items():
        if d["state"] == "sent":
            assert answered[caption] == d["zapi_message_id"]
        else:
            assert "expired" in d["last_error"]
    assert await fetchval(db_dsn, "SELECT count(*) FROM zapi_deliveries "
                                  "WHERE state IN ('queued', 'sending')") == 0


@pytest.mark.slow
async def test_two_servers_on_one_outbox_never_send_a_row_twice(db_dsn, fake, procs):
    # A cap above what one server's own queueing fills (20), so the other's wake-up on
    # its own sends finds room, and sends slow enough that none of the first server's
    # ends (waking it to claim more, anyone's) before the second has queued: both take
    # part even on a loaded machine. With a tight cap and fast sends, the server whose
    # sends just finished won every free slot before the other's next poll.
    fake.delay = 1.0
    env = server_env(db_dsn, fake, ZAPI_MAX_CONCURRENCY="24",
                     ZAPI_WEBHOOK_SECRET=WEBHOOK_SECRET)
    a, b = await start(procs, env), await start(procs, env)
    message_id = await new_message(db_dsn)
    async with aiohttp.ClientSession(headers=bearer(await create_api_key(db_dsn))) as http:
        ids = await queue_sends(http, a.url, message_id, 20, tag="a")
        ids |= await queue_sends(http, b.url, message_id, 20, tag="b")
        final = await settle(http, b.url, ids)
        async with http.post(f"{a.url}/api/zapi/webhook/{WEBHOOK_SECRET}", json={
                "type": "MessageStatusCallback", "status": "READ", "momment": 1,
                "ids": [final["a0"]["zapi_message_id"]]}) as r:
            assert r.status == 200 and (await r.json())["updated"] == 1
    assert all(d["state"] == "sent" for d in final.values())
    captions = [r.body["caption"] for r in fake.received]
    assert sorted(captions) == sorted(ids)                     # each exactly once
    assert fake.max_in_flight <= 24
    # Both servers did some of the work (each logs its own outcomes).
    assert "-> sent" in a.stderr() and "-> sent" in b.stderr()
    # The logs name the webhook's route, never its secret, nor Z-API's credentials.
    for _ in range(100):    # the access log line is written after the answer
        if "/api/zapi/webhook/{secret}" in a.stderr():
            break
        await asyncio.sleep(0.05)
    assert "/api/zapi/webhook/{secret}" in a.stderr()
    for secret in (WEBHOOK_SECRET, fake_zapi.INSTANCE, fake_zapi.TOKEN,
                   fake_zapi.CLIENT_TOKEN):
        assert secret not in a.stderr() + a.stdout() + b.stderr() + b.stdout()


@pytest.mark.slow
async def test_sending_a_large_file_streams_it(db_dsn, fake, procs):
    # The data URI is streamed from the stored chunks: the server's peak memory grows by
    # far less than the 64 MiB of base64 it sends (building it would cost that, twice).
    size = 48 * 1024 * 1024 + 1
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    data = head + os.urandom(size - len(head))
    srv = await start(procs, server_env(db_dsn, fake, ZAPI_TIMEOUT_SECONDS="60",
                                        ZAPI_LEASE_SECONDS="90"))
    message_id = await new_message(db_dsn)
    async with aiohttp.ClientSession(headers=bearer(await create_api_key(db_dsn))) as http:
        async with http.post(f"{srv.url}/api/media/upload-production?message_id="
                             f"{message_id}", data=data,
                             headers={"Content-Type": "video/mp4"}) as r:
            assert r.status == 201
            media_id = (await r.json())["id"]
        hwm_before = srv.hwm_kib()
        async with http.post(f"{srv.url}/api/media/{media_id}/send",
                             json={"phone": PHONE}) as r:
            delivery_id = (await r.json())["delivery_id"]
        final = await settle(http, srv.url, {"big": delivery_id}, timeout=120)
    assert final["big"]["state"] == "sent"
    [got] = fake.received
    assert got.endpoint == "send-video" and got.media_bytes()[1] == data
    growth_mib = (srv.hwm_kib() - hwm_before) / 1024
    print(f"peak RSS growth while sending 48 MiB: {growth_mib:.1f} MiB")
    assert growth_mib < 24, growth_mib
