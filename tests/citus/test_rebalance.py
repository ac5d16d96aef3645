"""Rebalancing while serving: a third worker joins and the rebalancer moves shards to
it while readers and uploaders run; no request fails other than with 503, and every
byte verifies after."""
from __future__ import annotations

import asyncio

import asyncpg

from tests.citus.test_distribute import _upload_raw
from tests.dbutil import new_message
from tests.media import jpeg_bytes


async def _job_state(conn, job_id: int) -> str:
    return await conn.fetchval("SELECT state FROM pg_dist_background_job "   # harness
                               "WHERE job_id = $1", job_id)


async def test_shards_move_to_a_new_worker_while_serving(citus, distributed, citus_client):
    message = await new_message(distributed.dsn)
    sent = {}
    for seed in range(100, 112):
        data = jpeg_bytes(9_000, seed=seed)
        sent[(await _upload_raw(citus_client, message, data))["id"]] = data
    new = citus.add_worker()
    conn = await asyncpg.connect(distributed.dsn)
    statuses: list[int] = []
    try:
        job = await conn.fetchval("SELECT citus_rebalance_start()")   # harness
        assert job is not None
        seed = 200
        while await _job_state(conn, job) not in ("finished", "failed", "cancelled"):
            for media_id, data in list(sent.items()):
                resp = await citus_client.get(f"/api/media/serve/{media_id}")
                statuses.append(resp.status)
                if resp.status == 200:
                    assert await resp.read() == data
            seed += 1
            data = jpeg_bytes(4_000, seed=seed)
            resp = await citus_client.post("/api/media/upload-production",
                                           params={"message_id": str(message)}, data=data,
                                           headers={"Content-Type": "image/jpeg"})
            statuses.append(resp.status)
            if resp.status == 201:
                sent[(await resp.json())["id"]] = data
            await asyncio.sleep(0.05)
        assert await _job_state(conn, job) == "finished"
        moved = await conn.fetchval("SELECT count(*) FROM citus_shards "   # harness
                                    "WHERE nodeport = $1", new.port)
    finally:
        await conn.close()
    assert moved > 0
    assert set(statuses) <= {200, 201, 503}, statuses
    for media_id, data in sent.items():
        resp = await citus_client.get(f"/api/media/serve/{media_id}")
        assert resp.status == 200 and await resp.read() == data
