"""`media-store distribute` on a real Citus cluster, and the service against its
coordinator: uploads, reads with Range, deletes and the cascade from messages, with
one media's reads routed to one shard and media placed on both workers."""
from __future__ import annotations

import asyncio

import aiohttp
import asyncpg

from server.cli.distribute import STEPS
from server.resources import SQL_DIR
from server.store.sqlfiles import Q, parse_sql
from tests.dbutil import fetchval, new_message
from tests.media import jpeg_bytes
from tests.procs import run_cli

UPLOAD = "/api/media/upload-production"


def test_distribute_applies_every_step_once(distributed):
    assert distributed.first == list(STEPS)
    assert distributed.second == []
    # The dry run printed the SQL of every step, in order, before anything ran.
    positions = [distributed.dry_run.index(f"-- {s}\n") for s in STEPS]
    assert positions == sorted(positions)
    assert "create_distributed_table('media_files', 'id')" in distributed.dry_run


async def test_store_tables_are_distributed_and_co_located(distributed):
    conn = await asyncpg.connect(distributed.dsn)
    try:
        rows = await conn.fetch("SELECT logicalrelid::text AS t, colocationid "   # harness
                                "FROM pg_dist_partition ORDER BY 1")
    finally:
        await conn.close()
    tables = {r["t"]: r["colocationid"] for r in rows}
    assert set(tables) == {"media_files", "media_chunks", "media_variants",
                           "media_variant_chunks"}
    assert len(set(tables.values())) == 1


async def test_distribution_statements_prepare_on_the_cluster(distributed):
    conn = await asyncpg.connect(distributed.dsn)
    try:
        for name in parse_sql((SQL_DIR / "distribution.sql").read_text()):
            await conn.prepare(getattr(Q, name).sql)
    finally:
        await conn.close()


async def _upload_raw(client, message_id: int, data: bytes) -> dict:
    resp = await client.post(UPLOAD, params={"message_id": str(message_id)}, data=data,
                             headers={"Content-Type": "image/jpeg"})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _upload_multipart(client, message_id: int, data: bytes) -> dict:
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename="a.jpg", content_type="image/jpeg")
    resp = await client.post(UPLOAD, data=form)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_upload_and_serve_with_range(citus_client, distributed):
    message = await new_message(distributed.dsn)
    raw = jpeg_bytes(20_000, seed=2)
    multi = jpeg_bytes(30_000, seed=3)
    for body, data in ((await _upload_raw(citus_client, message, raw), raw),
                       (await _upload_multipart(citus_client, message, multi), multi)):
        whole = await citus_client.get(body["url"])
        assert whole.status == 200 and await whole.read() == data
        part = await citus_client.get(body["url"], headers={"Range": "bytes=5000-12000"})
        assert part.status == 206
        assert await part.read() == data[5000:12001]
        listed = await citus_client.get(f"/api/messages/{message}/media")
        assert body["id"] in [m["id"] for m in (await listed.json())["items"]]


async def test_delete_tells_the_coordinators_listeners(citus_client, distributed):
    message = await new_message(distributed.dsn)
    body = await _upload_raw(citus_client, message, jpeg_bytes(5_000, seed=4))
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(distributed.dsn)
    try:
        await conn.add_listener("media_deleted", lambda *a: heard.put_nowait(a[3]))
        resp = await citus_client.delete(f"/api/media/{body['id']}")
        assert resp.status == 204, await resp.text()
        assert await asyncio.wait_for(heard.get(), 30) == str(body["id"])
    finally:
        await conn.close()
    assert (await citus_client.get(body["url"])).status == 404


async def test_deleting_a_message_deletes_its_media(citus_client, distributed):
    message = await new_message(distributed.dsn)
    ids = [(await _upload_raw(citus_client, message, jpeg_bytes(4_000, seed=s)))["id"]
           for s in range(5, 9)]
    heard: list[str] = []
    conn = await asyncpg.connect(distributed.dsn)
    try:
        await conn.add_listener("media_deleted", lambda *a: heard.append(a[3]))
        await conn.execute("DELETE FROM messages WHERE id = $1", message)  # the chat's own
        for _ in range(300):
            if len(heard) == len(ids):
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert sorted(heard) == sorted(str(i) for i in ids)
    assert await fetchval(distributed.dsn, "SELECT count(*) FROM media_chunks "
                          "WHERE media_id = ANY($1::int[])", ids) == 0
    for i in ids:
        assert (await citus_client.get(f"/api/media/{i}")).status == 404


async def test_a_read_of_one_media_is_routed_to_one_shard(citus_client, distributed):
    body = await _upload_raw(citus_client, await new_message(distributed.dsn),
                             jpeg_bytes(10_000, seed=9))
    conn = await asyncpg.connect(distributed.dsn)
    try:
        for st in (Q.serve_chunks, Q.get_media):
            args = [body["id"], 0, 3][:len(st.params)]
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {st.sql}", *args))
            assert "Task Count: 1" in plan, plan
            assert "Citus Adaptive" in plan
    finally:
        await conn.close()


async def test_media_land_on_both_workers(citus_client, distributed, citus):
    message = await new_message(distributed.dsn)
    ids = [(await _upload_raw(citus_client, message, jpeg_bytes(1_000, seed=s)))["id"]
           for s in range(10, 26)]
    conn = await asyncpg.connect(distributed.dsn)
    try:
        ports = {await conn.fetchval(   # test harness: where each media's shard lives
            "SELECT nodeport FROM citus_shards WHERE table_name = 'media_chunks'::regclass"
            " AND shardid = get_shard_id_for_distribution_column('media_chunks', $1::int)",
            i) for i in ids}
    finally:
        await conn.close()
    assert ports <= {w.port for w in citus.workers} and len(ports) >= 2


def test_the_command_line_on_a_distributed_database(distributed):
    dry = run_cli(["distribute", "--dry-run"], {"DATABASE_URL": distributed.dsn})
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == "nothing to do: already distributed"
