"""GET /api/messages/{id}/media in bounded pages (issue 6): ?limit= and ?cursor=,
keyset pagination that stays exact while files are added, 400 for a bad limit or
cursor; and neighbouring ranges in one chunk costing one read."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from server.http.ranges import ByteRange
from server.api.shared_reads import SharedReads
from tests.media import jpeg_bytes


async def add_files(store, message_id: int, n: int) -> list[int]:
    """n small complete files on a message, through the store (fast, no HTTP)."""
    ids = []
    for i in range(n):
        up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.jpg",
                                      original_name=f"f{i}.jpg",
                                      mime_type="image/jpeg", media_type="image")
        await up.write(jpeg_bytes(10, seed=i))
        ids.append((await up.finish(message_id)).id)
    return ids


async def page(client, message_id: int, **query) -> dict:
    resp = await client.get(f"/api/messages/{message_id}/media", params=query)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_default_page_is_100_and_pages_walk_everything_once(client, store, message_id):
    ids = await add_files(store, message_id, 250)
    first = await page(client, message_id)
    assert set(first) == {"items", "next_cursor"}
    assert [m["id"] for m in first["items"]] == ids[:100]
    assert first["next_cursor"]
    seen, cursor = [], None
    while True:
        body = await page(client, message_id, limit="70", **({"cursor": cursor} if cursor else {}))
        seen += [m["id"] for m in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


async def test_items_keep_the_media_json_shape(client, store, message_id):
    [media_id] = await add_files(store, message_id, 1)
    body = await page(client, message_id)
    single = await (await client.get(f"/api/media/{media_id}")).json()
    assert body == {"items": [single], "next_cursor": None}


async def test_exact_multiple_of_the_limit_ends_with_null(client, store, message_id):
    ids = await add_files(store, message_id, 4)
    one = await page(client, message_id, limit="2")
    two = await page(client, message_id, limit="2", cursor=one["next_cursor"])
    assert [m["id"] for m in one["items"] + two["items"]] == ids
    assert two["next_cursor"] is None


async def test_stable_under_concurrent_inserts(client, store, message_id):
    """Files that become visible while a client pages, in the middle of the order
    (uploads begun earlier, finished now) and at its end, never make an existing file
    repeat or go missing, as offset paging would."""
    early = []
    for i in range(30):   # begun first: their created_at sorts before everything below
        up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.jpg",
                                      original_name=f"e{i}.jpg", mime_type="image/jpeg",
                                      media_type="image")
        await up.write(jpeg_bytes(10, seed=i))
        early.append(up)
    before = await add_files(store, message_id, 60)

    async def insert():
        done = [(await up.finish(message_id)).id for up in early]
        return done + await add_files(store, message_id, 30)
    adder = asyncio.ensure_future(insert())
    seen, cursor = [], None
    try:
        while True:
            body = await page(client, message_id, limit="7",
                              **({"cursor": cursor} if cursor else {}))
            seen += [m["id"] for m in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
            await asyncio.sleep(0.005)
    finally:
        added = await adder
    assert len(seen) == len(set(seen)), "an item came twice"
    assert set(before) <= set(seen), "an existing item went missing"
    assert set(seen) <= set(before) | set(added)


@pytest.mark.parametrize("query,code", [
    ({"limit": "0"}, "invalid_limit"),
    ({"limit": "1001"}, "invalid_limit"),
    ({"limit": "ten"}, "invalid_limit"),
    ({"limit": ""}, "invalid_limit"),
    ({"cursor": "nope"}, "invalid_cursor"),
    ({"cursor": ""}, "invalid_cursor"),
    ({"cursor": "djEuMS4w"}, "invalid_cursor"),
    ({"cursor": "x" * 500}, "invalid_cursor"),
])
async def test_bad_limit_or_cursor_is_400(client, message_id, query, code):
    resp = await client.get(f"/api/messages/{message_id}/media", params=query)
    assert resp.status == 400
    assert (await resp.json())["error"] == code


async def test_max_limit_is_accepted(client, store, message_id):
    ids = await add_files(store, message_id, 3)
    body = await page(client, message_id, limit="1000")
    assert [m["id"] for m in body["items"]] == ids and body["next_cursor"] is None


# -- ranges in one chunk share one read ----------------------------------------------

async def test_neighbouring_ranges_in_one_chunk_share_one_read(store, message_id, monkeypatch):
    cs = store.chunk_size
    data = jpeg_bytes(6 * cs)
    up = await store.begin_upload(file_name="r.jpg", original_name="r.jpg",
                                  mime_type="image/jpeg", media_type="image")
    await up.write(data)
    rec = await up.finish(message_id)
    calls = []
    real = store._read_chunks

    async def counting(media_id, first, last):
        calls.append((first, last))
        return await real(media_id, first, last)
    monkeypatch.setattr(store, "_read_chunks", counting)

    ranges = [ByteRange(10, 20), ByteRange(100, 200), ByteRange(cs - 5, cs + 5),
              ByteRange(cs + 50, cs + 60), ByteRange(4 * cs, 4 * cs + 1)]
    reads = SharedReads(store, rec)
    for r in ranges:
        got = b"".join([p async for p in reads.read(r)])
        assert got == data[r.start:r.end + 1]
    # chunk 0 once, chunk 1 once (the third range ends there, the fourth reuses it),
    # chunk 4 once.
    assert sorted(calls) == [(0, 0), (1, 1), (4, 4)]
