"""The pure parts of the limits, table-tested: content codings, the upload pace,
upload slots (server/limits), stream slots (server/runtime/sending.py), chunk reads of
multi-range requests (server/limits), listing cursors and limits (server/http/paging.py)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from multidict import CIMultiDict

from server.errors import InvalidCursor, InvalidLimit, TooManyUploads, UploadTooSlow
from server.http.ranges import ByteRange
from server.http import paging
from server.runtime.protocol import parser_error_answer
from server.limits.ranges import chunk_reads, too_costly
from server.runtime.sending import StreamSlots
from server.limits.uploads import Pace, UploadSlots, has_content_coding


@pytest.mark.parametrize("values,coded", [
    ([], False),
    (["identity"], False),
    (["Identity"], False),
    ([" identity , identity "], False),
    ([""], False),
    (["gzip"], True),
    (["GZIP"], True),
    (["deflate"], True),
    (["br"], True),
    (["identity, gzip"], True),
    (["identity", "gzip"], True),       # two header lines are one list
    (["x-unknown"], True),
    ([",,gzip"], True),
])
def test_content_coding(values, coded):
    headers = CIMultiDict([("Content-Encoding", v) for v in values])
    assert has_content_coding(headers) is coded


# (rate, window, events [(time, bytes)], time the check fails or None)
PACE = [
    # 1024 B/s over 10 s windows: 10,240 bytes per window.
    (1024, 10, [(1, 10_240)], None),
    (1024, 10, [(1, 10_239)], 10),                   # one byte short at the window's end
    (1024, 10, [(1, 5_000), (9, 5_240)], None),
    (1024, 10, [(1, 10_240), (12, 10_240)], None),   # second window full too
    (1024, 10, [(1, 10_240), (12, 100)], 20),        # second window short
    (1024, 10, [(0.5, 1)] * 1, 10),                  # a trickle: one byte
    (1024, 10, [(t, 15) for t in range(0, 60, 15)], 10),   # 1 byte/15 s, as the attack
    (1, 1, [(0.5, 1), (1.5, 1), (2.5, 1)], None),
]


@pytest.mark.parametrize("rate,window,events,fails_at", PACE)
def test_pace(rate, window, events, fails_at):
    pace = Pace(rate, window, now=0.0)
    for t, n in events:
        if fails_at is not None and t >= fails_at:
            with pytest.raises(UploadTooSlow):
                pace.feed(t, n)
            return
        pace.feed(t, n)
    end = events[-1][0]
    # The deadline tells a read how long it may wait; checking there fails exactly
    # when the window fell short.
    if fails_at is None:
        pace.check(end)
        assert pace.deadline() > end
    else:
        assert pace.deadline() == fails_at
        with pytest.raises(UploadTooSlow):
            pace.check(pace.deadline())


def test_pace_deadline_extends_once_a_window_is_met():
    pace = Pace(100, 10, now=0.0)
    assert pace.deadline() == 10
    pace.feed(2, 1000)
    assert pace.deadline() == 20   # this window is met; the next can't fail before 20


def test_upload_slots():
    slots = UploadSlots(2)
    with slots.take(), slots.take():
        assert slots.in_use == 2
        with pytest.raises(TooManyUploads):
            with slots.take():
                pass
        assert slots.in_use == 2
    assert slots.in_use == 0
    with pytest.raises(ValueError):
        with slots.take():
            raise ValueError
    assert slots.in_use == 0   # freed on failure too


CS = 100
READS = [
    # (ranges as (start, end), chunk reads)
    ([(0, 0)], 1),
    ([(0, 0), (10, 10)], 1),                     # same chunk, neighbours: one read
    ([(0, 0), (100, 100)], 2),
    ([(0, 150), (160, 170)], 2),                 # the second starts where the first ended
    ([(0, 0), (500, 500), (10, 10)], 3),         # back to chunk 0: not neighbours
    ([(i * CS, i * CS) for i in range(32)], 32), # the attack: one byte per chunk
    ([(0, 999)], 10),
    ([(0, 999), (950, 960)], 10),
]


@pytest.mark.parametrize("ranges,reads", READS)
def test_chunk_reads(ranges, reads):
    assert chunk_reads([ByteRange(a, b) for a, b in ranges], CS) == reads


def test_too_costly_prices_only_multi_range_requests():
    many = [ByteRange(i * CS, i * CS) for i in range(5)]
    assert too_costly(many, CS, 4)
    assert not too_costly(many, CS, 5)
    assert not too_costly([ByteRange(0, 10 * CS)], CS, 1)   # one range: never
    assert not too_costly(None, CS, 1)
    assert not too_costly(object(), CS, 1)                   # unsatisfiable


@pytest.mark.parametrize("text,limit", [(None, 100), ("1", 1), ("100", 100), ("1000", 1000)])
def test_limit(text, limit):
    assert paging.parse_limit(text) == limit


@pytest.mark.parametrize("text", ["0", "1001", "-1", "", " 5", "5 ", "1e3", "abc", "١٢",
                                  "99999999999"])
def test_bad_limit(text):
    with pytest.raises(InvalidLimit):
        paging.parse_limit(text)


@pytest.mark.parametrize("when", [
    datetime(2026, 11, 25, 19, 35, 1, 123456, tzinfo=timezone.utc),
    datetime(1970, 1, 1, tzinfo=timezone.utc),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
])
def test_cursor_round_trip(when):
    pos = paging.Position(when, 2**31 - 1)
    text = paging.encode_cursor(pos)
    assert text.isascii() and "=" not in text and "/" not in text and "+" not in text
    assert paging.decode_cursor(text) == pos


@pytest.mark.parametrize("text", [
    "", "x", "!!!!", "v1.1.1",                        # not base64 of ours
    paging.encode_cursor(paging.Position(datetime.now(timezone.utc), 1))[:-2],  # truncated
    "djEuMS4w",                                       # v1.1.0: id 0
    "djIuMS4x",                                       # v2.1.1: unknown version
    "djEuOTk5OTk5OTk5OTk5OTk5OTk5OS4x",               # v1.9999999999999999999.1: overflow
    "a" * 65,
])
def test_bad_cursor(text):
    with pytest.raises(InvalidCursor):
        paging.decode_cursor(text)


def test_cursor_ids_past_int32_only_where_the_table_has_them():
    # Media ids are SERIAL; the audit log's BIGSERIAL (GET /api/audit's pages).
    pos = paging.Position(datetime(2026, 1, 1, tzinfo=timezone.utc), 2**31)
    text = paging.encode_cursor(pos)
    with pytest.raises(InvalidCursor):
        paging.decode_cursor(text)
    assert paging.decode_cursor(text, max_id=2**63 - 1) == pos
    big = paging.Position(pos.created_at, 2**63 - 1)
    assert paging.decode_cursor(paging.encode_cursor(big), max_id=2**63 - 1) == big


def test_page_body_shape():
    assert paging.page_body([], None) == {"items": [], "next_cursor": None}
    pos = paging.Position(datetime(2026, 1, 1, tzinfo=timezone.utc), 7)
    body = paging.page_body([{"id": 7}], pos)
    assert body["items"] == [{"id": 7}] and paging.decode_cursor(body["next_cursor"]) == pos


@pytest.mark.parametrize("status,code", [(400, "bad_request"), (413, "bad_request"),
                                         (431, "bad_request"), (500, "internal_error")])
def test_parser_error_answer(status, code):
    resp = parser_error_answer(status)
    assert resp.status == status
    assert resp.headers["Server"] == "media-store"
    assert resp.headers["Cache-Control"] == "no-store"
    assert b'"error": "%s"' % code.encode() in resp.body


async def test_stream_slots_pass_on_in_arrival_order():
    slots = StreamSlots(2)
    await slots.acquire()
    await slots.acquire()
    assert (slots.in_use, slots.waiting) == (2, 0)
    order = []

    async def waiter(name):
        await slots.acquire()
        order.append(name)

    tasks = [asyncio.ensure_future(waiter(n)) for n in "abc"]
    await asyncio.sleep(0)
    assert (slots.in_use, slots.waiting) == (2, 3)
    slots.release()             # handed to "a": still two in use
    await asyncio.sleep(0)
    assert order == ["a"] and (slots.in_use, slots.waiting) == (2, 2)
    slots.release()
    slots.release()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"] and (slots.in_use, slots.waiting) == (2, 0)
    for _ in range(2):
        slots.release()
    assert slots.in_use == 0


async def test_stream_slots_survive_cancelled_waiters():
    slots = StreamSlots(1)
    await slots.acquire()
    gone = asyncio.ensure_future(slots.acquire())
    late = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    gone.cancel()               # left the queue before its turn
    await asyncio.gather(gone, return_exceptions=True)
    assert slots.waiting == 1
    slots.release()             # goes to "late", not to the cancelled one
    await late
    assert (slots.in_use, slots.waiting) == (1, 0)

    handed = asyncio.ensure_future(slots.acquire())
    after = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    slots.release()             # handed to "handed"...
    handed.cancel()             # ... which is cancelled before it runs: passes it on
    await asyncio.gather(handed, return_exceptions=True)
    await after
    assert (slots.in_use, slots.waiting) == (1, 0)
    slots.release()
    assert slots.in_use == 0


def test_stream_slots_at_least_one():
    assert StreamSlots(0).limit == 1   # a pool of one connection still serves reads
