"""One worker stopped outright: media whose shards live on the other worker are still
served; requests that need the stopped one get 503 with Retry-After (never a 500);
once it is back, everything reads back byte for byte."""
from __future__ import annotations

import asyncpg

from tests.citus.test_distribute import _upload_raw
from tests.dbutil import new_message
from tests.media import jpeg_bytes


async def _worker_port_of(dsn: str, media_id: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(   # test harness: where the media's shard lives
            "SELECT nodeport FROM citus_shards WHERE table_name = 'media_files'::regclass"
            " AND shardid = get_shard_id_for_distribution_column('media_files', $1::int)",
            media_id)
    finally:
        await conn.close()


async def test_a_stopped_worker_costs_only_its_media(citus, distributed, citus_client):
    message = await new_message(distributed.dsn)
    sent = {}
    for seed in range(70, 86):
        data = jpeg_bytes(7_000, seed=seed)
        sent[(await _upload_raw(citus_client, message, data))["id"]] = data
    where = {i: await _worker_port_of(distributed.dsn, i) for i in sent}
    assert len(set(where.values())) > 1
    stopped = next(w for w in citus.workers if w.port == where[min(sent)])
    citus.stop_worker(stopped)
    try:
        for media_id, data in sent.items():
            resp = await citus_client.get(f"/api/media/serve/{media_id}")
            if where[media_id] == stopped.port:
                assert resp.status == 503, await resp.text()
                assert int(resp.headers["Retry-After"]) > 0
                assert (await resp.json())["error"] == "unavailable"
            else:
                assert resp.status == 200, await resp.text()
                assert await resp.read() == data
        # New uploads land on either worker: stored, or refused as unavailable.
        statuses = set()
        for seed in range(86, 96):
            data = jpeg_bytes(3_000, seed=seed)
            resp = await citus_client.post("/api/media/upload-production",
                                           params={"message_id": str(message)},
                                           data=data, headers={"Content-Type": "image/jpeg"})
            statuses.add(resp.status)
            if resp.status == 201:
                sent[(await resp.json())["id"]] = data
            else:
                assert "Retry-After" in resp.headers, await resp.text()
        assert statuses <= {201, 503} and 201 in statuses
        # A listing needs every worker: unavailable as a whole, not an error.
        listing = await citus_client.get(f"/api/messages/{message}/media")
        assert listing.status == 503 and "Retry-After" in listing.headers
    finally:
        citus.start_worker(stopped)
    for media_id, data in sent.items():
        resp = await citus_client.get(f"/api/media/serve/{media_id}")
        assert resp.status == 200 and await resp.read() == data
