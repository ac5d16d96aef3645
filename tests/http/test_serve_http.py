"""GET/HEAD /api/media/serve/{id} through a real server: one short test per header case.

The cases follow docs/http-serving.md; "item N" in a comment is its rule N.
They only read what they uploaded themselves, so they share one server and one database
(copied from conftest's migrated template) instead of a fresh database each, which
costs 0.1-0.3 s and would multiply by the ~80 cases here. Chunks are 3 KiB, as in
conftest, so the 50 KB file most cases read spans 17 chunks. Cases that need another
server configuration start their own server on the same database.

The server runs in public mode (MEDIA_PUBLIC_READ=true, the original design's one-year
public cache); uploads send an admin key. Signed URLs and private caching are
tests/process/test_access.py's.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import struct
import unicodedata
import uuid
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from server.http.conditional import http_date
from server.observability.metrics import METRICS
from server.settings import SETTINGS, Settings, StoreSettings, replace_settings
from server.store.media import STORE
from tests.apps import build_app, start_client
from tests.byteranges import byteranges, content_range
from tests.dbutil import copy_of_template, create_api_key, drop_database
from tests.media import BYTES_KEPT, jpeg_bytes, png_bytes

# Every test runs in the module's event loop, where the shared server lives.
pytestmark = pytest.mark.asyncio(loop_scope="module")

CHUNK = 3 * 1024
SIZE = 50_000
LONG_CACHE = "public, max-age=31536000, immutable"
SERVE_ROUTE = "/api/media/serve/{mediaId}"
# What a 206 must repeat from the 200 (item 5).
REPRESENTATION_HEADERS = ("ETag", "Last-Modified", "Cache-Control", "Content-Type",
                          "Content-Disposition", "X-Content-Type-Options", "Accept-Ranges")


class Media(NamedTuple):
    data: bytes
    url: str
    json: dict


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_dsn(pg_server_dsn, template_dsn):
    dsn = await copy_of_template(pg_server_dsn, template_dsn, "media_serve")
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.fixture(scope="module", params=[0, 64 * 1024**2], ids=["from-chunks", "from-cache"])
def shared_settings(shared_dsn, request) -> Settings:
    """Every case twice: small files read from their chunks, and from the in-memory
    cache of whole small files (MEDIA_CACHE_BYTES). Public mode (see the docstring)."""
    # Chunks of 3 KiB make every multi-range test touch many chunks: the bound on chunk
    # reads (tests/process/test_limits_process.py) is raised so these tests see multipart
    # bodies.
    return replace_settings(Settings(), db__url=shared_dsn, store__chunk_bytes=CHUNK,
                            uploads__max_bytes=64 * 1024**2, store__cache_bytes=request.param,
                            security__public_read=True, store__max_range_chunks=64, **BYTES_KEPT)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_key(shared_dsn) -> str:
    return await create_api_key(shared_dsn, "admin")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(shared_settings, shared_dsn, shared_key):
    """The shared server (it shadows conftest's per-test ``client`` in this module)."""
    c = await start_client(build_app(shared_settings, shared_dsn), key=shared_key)
    yield c
    await c.close()


async def upload(client, data: bytes, *, filename: str = "photo.jpg",
                 content_type: str = "image/jpeg") -> Media:
    message_id = await client.app[STORE].create_message()
    # quote_fields=False sends the file name as raw UTF-8, as browsers do (aiohttp's
    # default percent-encoding is covered in test_upload_http.py).
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename=filename, content_type=content_type)
    resp = await client.post("/api/media/upload-production", data=form)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return Media(data, body["url"], body)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def media(client) -> Media:
    """A 50 KB JPEG, over 17 chunks; read-only for every test."""
    return await upload(client, jpeg_bytes(SIZE))


@pytest_asyncio.fixture(loop_scope="module")
async def server_for(shared_settings, shared_dsn, shared_key):
    """Start another server on the shared database: ``await server_for(**settings)``
    (conftest's ``server_for``, on this module's database and event loop)."""
    clients = []

    async def start(*, server_cls=TestServer, server_kwargs=None, **changes) -> TestClient:
        settings = replace_settings(shared_settings, **changes)
        c = await start_client(build_app(settings, shared_dsn), server_cls=server_cls,
                               server_kwargs=server_kwargs, key=shared_key)
        clients.append(c)
        return c

    yield start
    for c in clients:
        await c.close()


async def fetch(client, url: str, method: str = "GET", headers=None):
    resp = await client.request(method, url, headers=headers)
    return resp, await resp.read()


def assert_range(resp, body: bytes, data: bytes, start: int, end: int) -> None:
    """A single-part 206 for data[start..end] (item 5)."""
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    assert resp.headers["Content-Length"] == str(end - start + 1)
    assert not resp.headers["Content-Type"].startswith("multipart/")
    assert body == data[start:end + 1]


def assert_whole(resp, body: bytes, data: bytes) -> None:
    assert resp.status == 200
    assert "Content-Range" not in resp.headers
    assert resp.headers["Content-Length"] == str(len(data))
    assert body == data


def assert_not_long_cached(resp) -> None:
    """Item 13: error responses never carry the media's long cache lifetime."""
    cc = resp.headers.get("Cache-Control", "")
    ages = [int(a) for a in re.findall(r"max-age=(\d+)", cc)]
    assert not any(ages) and "immutable" not in cc and "public" not in cc, cc
    assert "Expires" not in resp.headers


def assert_parts(resp, body: bytes, data: bytes, expected: list[tuple[int, int]],
                 ctype: str = "image/jpeg") -> None:
    """A multipart/byteranges 206 with one part per expected range, in that order."""
    assert resp.status == 206
    assert "Content-Range" not in resp.headers   # §14.4: only inside the parts
    assert int(resp.headers["Content-Length"]) == len(body)
    parts = byteranges(resp, body)
    got = [(h["Content-Range"], h["Content-Type"], part) for h, part in parts]
    assert got == [(f"bytes {a}-{b}/{len(data)}", ctype, data[a:b + 1]) for a, b in expected]


def assert_bytes_of(resp, body: bytes, data: bytes) -> None:
    """Whatever the server chose (200, one range, several, or 416 where allowed), every
    byte it sent is where Content-Range says it is in the file."""
    if resp.status == 200:
        assert body == data
    elif resp.status == 206 and resp.headers["Content-Type"].startswith("multipart/"):
        for headers, part in byteranges(resp, body):
            start, end = content_range(headers["Content-Range"], len(data))
            assert part == data[start:end + 1]
    elif resp.status == 206:
        start, end = content_range(resp.headers["Content-Range"], len(data))
        assert body == data[start:end + 1]
    else:
        assert resp.status == 416, resp.status


async def raw_exchange(client, request: str) -> tuple[bytes, bytes]:
    """One request on a fresh connection, read until the server closes it: the head and
    every byte after it, so an illegal body cannot hide behind the client's framing."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request.encode())
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    return head, rest


def raw_request(method: str, url: str, *headers: str) -> str:
    lines = [f"{method} {url} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return "\r\n".join(lines) + "\r\n\r\n"


# -- item 1: Range is for GET only; HEAD is the 200 without a body -------------------

async def test_head_is_the_200_headers_without_body(client, media):
    get, _ = await fetch(client, media.url)
    head, rest = await raw_exchange(client, raw_request("HEAD", media.url))
    assert head.startswith(b"HTTP/1.1 200 ")
    assert rest == b""
    resp, body = await fetch(client, media.url, "HEAD")
    assert resp.status == 200 and body == b""
    assert resp.headers["Content-Length"] == str(SIZE)
    for name in REPRESENTATION_HEADERS:
        assert resp.headers[name] == get.headers[name], name


async def test_head_ignores_range(client, media):
    resp, body = await fetch(client, media.url, "HEAD", {"Range": "bytes=0-1"})
    assert resp.status == 200 and body == b""
    assert resp.headers["Content-Length"] == str(SIZE)
    assert "Content-Range" not in resp.headers


async def test_head_ignores_unsatisfiable_range(client, media):
    resp, _ = await fetch(client, media.url, "HEAD", {"Range": f"bytes={SIZE}-"})
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(SIZE)


async def test_post_and_other_methods_ignore_range(client, media):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        resp = await client.request(method, media.url, headers={"Range": "bytes=0-1"})
        assert resp.status == 405, method
        assert "Content-Range" not in resp.headers
        assert (await resp.json())["error"] == "method_not_allowed"


# -- item 2: the range specs ----------------------------------------------------------

async def test_range_first_two_bytes_as_ios_asks(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=0-1"})
    assert_range(resp, body, media.data, 0, 1)


async def test_range_open_ended_from_zero_as_chromium_and_ffmpeg_ask(client, media):
    resp, body = await fetch(client, media.url, headers={
        "Range": "bytes=0-", "Accept-Encoding": "identity"})
    assert_range(resp, body, media.data, 0, SIZE - 1)


async def test_range_open_ended_seek(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=31234-"})
    assert_range(resp, body, media.data, 31234, SIZE - 1)


async def test_range_suffix_is_the_last_n_bytes(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=-500"})
    assert_range(resp, body, media.data, SIZE - 500, SIZE - 1)


async def test_range_suffix_of_the_whole_length_is_the_whole_file_as_206(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": f"bytes=-{SIZE}"})
    assert_range(resp, body, media.data, 0, SIZE - 1)


async def test_range_suffix_longer_than_the_file_is_the_whole_file_as_206(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": f"bytes=-{SIZE + 1000}"})
    assert_range(resp, body, media.data, 0, SIZE - 1)


async def test_range_end_beyond_the_file_is_clamped(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": f"bytes=49000-{SIZE + 5}"})
    assert_range(resp, body, media.data, 49000, SIZE - 1)


async def test_range_end_with_too_many_digits_is_clamped(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=10-" + "9" * 40})
    assert_range(resp, body, media.data, 10, SIZE - 1)


async def test_range_unit_is_case_insensitive(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "BYTES=5-9"})
    assert_range(resp, body, media.data, 5, 9)


async def test_range_spaces_around_commas_are_allowed(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=0-1 , 200-201"})
    assert_parts(resp, body, media.data, [(0, 1), (200, 201)])


async def test_range_suffix_zero_is_unsatisfiable(client, media):
    resp, _ = await fetch(client, media.url, headers={"Range": "bytes=-0"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"


# -- item 3: what is not understood is ignored -----------------------------------------

async def test_range_with_unknown_unit_is_ignored(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "items=0-1"})
    assert_whole(resp, body, media.data)


INVALID_RANGES = [
    "bytes=1-0",        # last < first
    "bytes=abc",
    "bytes=0-1;x",
    "bytes= 0-1",       # no OWS after "=" in the grammar
    "bytes=-",
    "bytes=0--1",
    "bytes=--1",
    "bytes=\u00b2-",    # a non-ASCII digit
    "bytes=",
    "bytes",
    "bytes=0-1,2-1",    # one invalid spec invalidates the header
    "bytes=0x10-",
]


async def test_range_with_invalid_syntax_is_ignored(client, media):
    for header in INVALID_RANGES:
        resp, body = await fetch(client, media.url, headers={"Range": header})
        assert resp.status == 200, header
        assert body == media.data, header


# -- item 4: nothing satisfiable -> 416 with bytes */len ------------------------------

async def test_range_starting_at_the_length_is_unsatisfiable(client, media):
    resp, _ = await fetch(client, media.url, headers={"Range": f"bytes={SIZE}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"


async def test_range_starting_beyond_the_length_is_unsatisfiable(client, media):
    resp, _ = await fetch(client, media.url, headers={"Range": f"bytes={SIZE + 10}-{SIZE + 20}"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"


async def test_range_start_with_too_many_digits_is_unsatisfiable(client, media):
    resp, _ = await fetch(client, media.url, headers={"Range": "bytes=" + "9" * 40 + "-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{SIZE}"


async def test_range_unsatisfiable_specs_among_satisfiable_ones_are_dropped(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": f"bytes=0-1,{SIZE}-,-0"})
    assert_range(resp, body, media.data, 0, 1)


async def test_range_not_satisfiable_is_not_cached_long(client, media):
    resp, _ = await fetch(client, media.url, headers={"Range": f"bytes={SIZE}-"})
    assert resp.status == 416
    assert_not_long_cached(resp)


# -- item 5: a single range is a 206 with the 200's headers ----------------------------

async def test_range_206_carries_the_200s_headers(client, media):
    full, _ = await fetch(client, media.url)
    part, _ = await fetch(client, media.url, headers={"Range": "bytes=100-199"})
    assert part.status == 206
    for name in REPRESENTATION_HEADERS:
        assert part.headers[name] == full.headers[name], name


# -- item 6: several ranges ------------------------------------------------------------

async def test_multiple_ranges_are_multipart_in_request_order(client, media):
    resp, body = await fetch(client, media.url,
                             headers={"Range": "bytes=40000-40099,0-99,20000-20009"})
    assert_parts(resp, body, media.data, [(40000, 40099), (0, 99), (20000, 20009)])


async def test_multiple_ranges_response_keeps_the_representation_headers(client, media):
    full, _ = await fetch(client, media.url)
    resp, _ = await fetch(client, media.url, headers={"Range": "bytes=0-9,1000-1009"})
    assert resp.status == 206
    for name in REPRESENTATION_HEADERS:
        if name != "Content-Type":   # the parts carry it
            assert resp.headers[name] == full.headers[name], name


async def test_overlapping_ranges_merged_into_one_are_not_multipart(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=0-99,50-149"})
    assert_range(resp, body, media.data, 0, 149)


async def test_overlapping_ranges_are_merged_inside_multipart(client, media):
    resp, body = await fetch(client, media.url,
                             headers={"Range": "bytes=30000-30099,0-99,50-149"})
    assert_parts(resp, body, media.data, [(0, 149), (30000, 30099)])


def spread_ranges(count: int, step: int = 1000) -> str:
    return "bytes=" + ",".join(f"{i * step}-{i * step + 9}" for i in range(count))


async def test_32_ranges_are_served(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": spread_ranges(32, 1500)})
    assert_parts(resp, body, media.data, [(i * 1500, i * 1500 + 9) for i in range(32)])


async def test_33_ranges_get_the_whole_file(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": spread_ranges(33, 1500)})
    assert_whole(resp, body, media.data)


async def test_many_overlapping_ranges_never_amplify(client, media):
    # 32 ranges of (almost) the whole file: 1.6 MB if each were sent.
    header = "bytes=" + ",".join(f"{i}-{SIZE - 1 - i}" for i in range(32))
    resp, body = await fetch(client, media.url, headers={"Range": header})
    assert len(body) <= 2 * SIZE
    assert_bytes_of(resp, body, media.data)


async def test_many_copies_of_the_whole_file_never_amplify(client, media):
    header = "bytes=" + ",".join(["0-"] * 32)
    resp, body = await fetch(client, media.url, headers={"Range": header})
    assert len(body) <= 2 * SIZE
    assert_bytes_of(resp, body, media.data)


async def test_many_small_out_of_order_ranges_never_amplify(client):
    # One-byte ranges just too far apart to be merged, on a small file, backwards:
    # the most part overhead per byte of file a client can ask for.
    small = await upload(client, jpeg_bytes(2600))
    specs = [(i * 82, i * 82) for i in reversed(range(32))]
    header = "bytes=" + ",".join(f"{a}-{b}" for a, b in specs)
    resp, body = await fetch(client, small.url, headers={"Range": header})
    assert len(body) <= 3 * len(small.data)
    assert_bytes_of(resp, body, small.data)


async def test_nearly_adjacent_ranges_may_be_merged(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=0-9,20-29"})
    assert resp.status == 206
    if resp.headers["Content-Type"].startswith("multipart/"):
        assert_parts(resp, body, media.data, [(0, 9), (20, 29)])
    else:
        assert_range(resp, body, media.data, 0, 29)


# -- ranges over chunk boundaries ------------------------------------------------------

async def test_ranges_on_chunk_boundaries(client, media):
    c = client.app[SETTINGS].store.chunk_bytes
    assert SIZE // c >= 10, "the file must span many chunks"
    cases = [(0, c - 2), (0, c - 1), (0, c), (SIZE - 1, SIZE - 1),
             (SIZE // c * c, SIZE - 1)]          # exactly the short last chunk
    for b in (c, 2 * c, 7 * c, SIZE // c * c):
        cases += [(b - 1, b - 1), (b, b), (b + 1, b + 1), (b - 1, b), (b - 1, b + 1),
                  (b, b + c - 1), (b - c, b - 1), (b + 1, b + c), (b - 1, b + c + 1),
                  (b - c - 1, b + c)]
    for start, end in cases:
        start, end = max(start, 0), min(end, SIZE - 1)
        resp, body = await fetch(client, media.url, headers={"Range": f"bytes={start}-{end}"})
        assert_range(resp, body, media.data, start, end)


async def test_open_ended_ranges_from_chunk_boundaries(client, media):
    c = client.app[SETTINGS].store.chunk_bytes
    last = SIZE // c * c      # where the short last chunk starts
    for start in (c - 1, c, c + 1, last - 1, last, last + 1):
        resp, body = await fetch(client, media.url, headers={"Range": f"bytes={start}-"})
        assert_range(resp, body, media.data, start, SIZE - 1)


async def test_multipart_ranges_across_chunk_boundaries(client, media):
    c = client.app[SETTINGS].store.chunk_bytes
    last = SIZE // c * c
    specs = [(3 * c - 1, 3 * c), (c - 1, 2 * c + 1), (last - 1, SIZE - 1)]
    header = "bytes=" + ",".join(f"{a}-{b}" for a, b in specs)
    resp, body = await fetch(client, media.url, headers={"Range": header})
    assert_parts(resp, body, media.data, specs)


async def test_ranges_at_the_end_of_a_several_mib_file(server_for):
    # The production chunk size (255 KiB): several MiB in a couple of dozen chunks.
    c = StoreSettings.chunk_bytes
    big_client = await server_for(store__chunk_bytes=c)
    big = await upload(big_client, jpeg_bytes(5 * 1024 * 1024 + 12_345))
    data, n = big.data, len(big.data)
    last_boundary = (n - 1) // c * c
    assert n > 20 * c
    for start, end in [(n - 1, n - 1), (n - 1000, n - 1), (last_boundary - 1, n - 1),
                       (last_boundary, last_boundary), (last_boundary - c - 5, last_boundary + 5),
                       (n - 300_000, n + 10**6)]:
        resp, body = await fetch(big_client, big.url, headers={"Range": f"bytes={start}-{end}"})
        assert_range(resp, body, data, start, min(end, n - 1))
    resp, body = await fetch(big_client, big.url, headers={"Range": "bytes=-300000"})
    assert_range(resp, body, data, n - 300_000, n - 1)


# -- item 7: the ETag ------------------------------------------------------------------

async def test_etag_is_the_strong_sha256_of_the_bytes(client, media):
    resp, _ = await fetch(client, media.url)
    assert resp.headers["ETag"] == f'"{hashlib.sha256(media.data).hexdigest()}"'


async def test_etag_is_identical_on_200_206_304_and_head(client, media):
    etags = set()
    for method, headers in [("GET", {}), ("GET", {"Range": "bytes=1-2"}),
                            ("GET", {"Range": "bytes=1-2,100-200"}), ("HEAD", {})]:
        resp, _ = await fetch(client, media.url, method, headers)
        assert resp.status in (200, 206)
        etags.add(resp.headers["ETag"])
    (etag,) = etags
    resp, _ = await fetch(client, media.url, headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag


async def test_etag_and_last_modified_are_the_same_from_another_instance(
        client, media, server_for):
    other = await server_for()
    a, _ = await fetch(client, media.url)
    b, body = await fetch(other, media.url)
    assert body == media.data
    assert (a.headers["ETag"], a.headers["Last-Modified"]) == (
        b.headers["ETag"], b.headers["Last-Modified"])


# -- item 8: Last-Modified -------------------------------------------------------------

async def test_last_modified_is_the_creation_time_and_not_after_date(client, media):
    resp, _ = await fetch(client, media.url)
    modified = parsedate_to_datetime(resp.headers["Last-Modified"])
    assert modified <= parsedate_to_datetime(resp.headers["Date"])
    created = datetime.fromisoformat(media.json["created_at"])
    assert modified == created.replace(microsecond=0)


async def test_last_modified_of_an_older_file_is_its_creation_time(client):
    old = await upload(client, jpeg_bytes(1000))
    # Back-date the row by a day, so the creation time and "now" cannot coincide.
    async with client.app[STORE].connection() as conn:
        created = await conn.fetchval(
            "UPDATE media_files SET created_at = created_at - interval '1 day' "
            "WHERE id = $1 RETURNING created_at", old.json["id"])
    resp, _ = await fetch(client, old.url)
    assert resp.headers["Last-Modified"] == http_date(created)


# -- item 9: preconditions ----------------------------------------------------------------

async def etag_and_modified(client, media) -> tuple[str, str]:
    resp, _ = await fetch(client, media.url, "HEAD")
    return resp.headers["ETag"], resp.headers["Last-Modified"]


def shifted(date: str, seconds: int) -> str:
    return http_date(parsedate_to_datetime(date) + timedelta(seconds=seconds))


async def test_if_match_other_etag_is_412(client, media):
    resp, _ = await fetch(client, media.url, headers={"If-Match": '"other"'})
    assert resp.status == 412


async def test_precondition_failed_is_not_cached_long(client, media):
    resp, _ = await fetch(client, media.url, headers={"If-Match": '"other"'})
    assert resp.status == 412
    assert_not_long_cached(resp)


async def test_if_match_same_etag_is_200(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"If-Match": f'"x", {etag}'})
    assert_whole(resp, body, media.data)


async def test_if_match_star_is_200(client, media):
    resp, body = await fetch(client, media.url, headers={"If-Match": "*"})
    assert_whole(resp, body, media.data)


async def test_if_match_with_weak_tag_is_412(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, _ = await fetch(client, media.url, headers={"If-Match": f"W/{etag}"})
    assert resp.status == 412


async def test_if_unmodified_since_before_last_modified_is_412(client, media):
    _, modified = await etag_and_modified(client, media)
    resp, _ = await fetch(client, media.url,
                          headers={"If-Unmodified-Since": shifted(modified, -1)})
    assert resp.status == 412
    assert_not_long_cached(resp)


async def test_if_unmodified_since_at_last_modified_is_200(client, media):
    _, modified = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"If-Unmodified-Since": modified})
    assert_whole(resp, body, media.data)


async def test_if_unmodified_since_with_invalid_date_is_ignored(client, media):
    resp, body = await fetch(client, media.url, headers={"If-Unmodified-Since": "yesterday"})
    assert_whole(resp, body, media.data)


async def test_if_unmodified_since_is_not_checked_when_if_match_holds(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={
        "If-Match": etag, "If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"})
    assert_whole(resp, body, media.data)


async def test_if_match_failure_wins_over_if_none_match(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, _ = await fetch(client, media.url, headers={"If-Match": '"other"',
                                                      "If-None-Match": etag})
    assert resp.status == 412


async def test_if_none_match_same_etag_is_304(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"If-None-Match": etag})
    assert resp.status == 304 and body == b""


async def test_if_none_match_uses_weak_comparison(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, _ = await fetch(client, media.url, headers={"If-None-Match": f"W/{etag}"})
    assert resp.status == 304


async def test_if_none_match_list_is_304(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, _ = await fetch(client, media.url,
                          headers={"If-None-Match": f'"a", W/"b",{etag} , "c"'})
    assert resp.status == 304


async def test_if_none_match_star_is_304(client, media):
    resp, _ = await fetch(client, media.url, headers={"If-None-Match": "*"})
    assert resp.status == 304


async def test_if_none_match_on_several_header_lines_is_304(client, media):
    etag, _ = await etag_and_modified(client, media)
    headers = CIMultiDict([("If-None-Match", '"a"'), ("If-None-Match", etag)])
    resp, _ = await fetch(client, media.url, headers=headers)
    assert resp.status == 304


async def test_if_none_match_other_etag_is_200(client, media):
    resp, body = await fetch(client, media.url, headers={"If-None-Match": '"other", W/"x"'})
    assert_whole(resp, body, media.data)


async def test_if_none_match_on_head_is_304(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, _ = await fetch(client, media.url, "HEAD", {"If-None-Match": etag})
    assert resp.status == 304


async def test_if_none_match_disables_if_modified_since(client, media):
    _, modified = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={
        "If-None-Match": '"other"', "If-Modified-Since": modified})
    assert_whole(resp, body, media.data)


async def test_if_modified_since_at_last_modified_is_304(client, media):
    _, modified = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"If-Modified-Since": modified})
    assert resp.status == 304 and body == b""


async def test_if_modified_since_before_last_modified_is_200(client, media):
    _, modified = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url,
                             headers={"If-Modified-Since": shifted(modified, -1)})
    assert_whole(resp, body, media.data)


async def test_if_modified_since_with_invalid_date_is_ignored(client, media):
    resp, body = await fetch(client, media.url,
                             headers={"If-Modified-Since": "2099-01-01T00:00:00Z"})
    assert_whole(resp, body, media.data)


async def test_preconditions_come_before_range(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"If-None-Match": etag,
                                                         "Range": "bytes=0-1"})
    assert resp.status == 304 and body == b""
    resp, _ = await fetch(client, media.url, headers={"If-Match": '"other"',
                                                      "Range": "bytes=0-1"})
    assert resp.status == 412


# -- item 10: If-Range -----------------------------------------------------------------

async def test_if_range_with_the_strong_etag_is_206(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=40000-",
                                                         "If-Range": etag})
    assert_range(resp, body, media.data, 40000, SIZE - 1)


async def test_if_range_with_a_weak_etag_is_the_whole_200(client, media):
    etag, _ = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=40000-",
                                                         "If-Range": f"W/{etag}"})
    assert_whole(resp, body, media.data)


async def test_if_range_with_another_etag_is_the_whole_200(client, media):
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=0-1",
                                                         "If-Range": '"other"'})
    assert_whole(resp, body, media.data)


async def test_if_range_with_the_exact_date_is_206(client, media):
    _, modified = await etag_and_modified(client, media)
    resp, body = await fetch(client, media.url, headers={"Range": "bytes=0-1",
                                                         "If-Range": modified})
    assert_range(resp, body, media.data, 0, 1)


async def test_if_range_with_another_date_is_the_whole_200(client, media):
    _, modified = await etag_and_modified(client, media)
    for offset in (-1, 1):
        resp, body = await fetch(client, media.url, headers={
            "Range": "bytes=0-1", "If-Range": shifted(modified, offset)})
        assert_whole(resp, body, media.data)


async def test_if_range_without_range_is_ignored(client, media):
    resp, body = await fetch(client, media.url, headers={"If-Range": '"other"'})
    assert_whole(resp, body, media.data)


async def test_if_range_with_an_unsatisfiable_range_is_the_whole_200(client, media):
    # A failed If-Range ignores Range altogether, even one that would be a 416.
    resp, body = await fetch(client, media.url, headers={"Range": f"bytes={SIZE}-",
                                                         "If-Range": '"other"'})
    assert_whole(resp, body, media.data)


# -- item 11: 304 ----------------------------------------------------------------------

async def test_not_modified_has_validators_and_caching_headers_and_no_body(client, media):
    etag, modified = await etag_and_modified(client, media)
    head, rest = await raw_exchange(client, raw_request(
        "GET", media.url, f"If-None-Match: {etag}"))
    assert rest == b""
    status, *lines = head.decode().split("\r\n")
    assert status.startswith("HTTP/1.1 304 ")
    headers = CIMultiDict(line.split(": ", 1) for line in lines)
    assert headers["ETag"] == etag
    assert headers["Last-Modified"] == modified
    assert headers["Cache-Control"] == LONG_CACHE
    assert "Date" in headers
    assert "Content-Length" not in headers or headers["Content-Length"] == "0"


# -- items 12-14: Accept-Ranges, Cache-Control, no content-coding, no Vary ------------

async def test_accept_ranges_on_200_and_206(client, media):
    full, _ = await fetch(client, media.url)
    part, _ = await fetch(client, media.url, headers={"Range": "bytes=0-1"})
    assert (full.status, part.status) == (200, 206)
    assert full.headers["Accept-Ranges"] == part.headers["Accept-Ranges"] == "bytes"


async def test_cache_control_is_public_immutable_on_200_206_304_and_head(client, media):
    etag, _ = await etag_and_modified(client, media)
    for method, headers, status in [("GET", {}, 200), ("GET", {"Range": "bytes=0-1"}, 206),
                                    ("GET", {"If-None-Match": etag}, 304), ("HEAD", {}, 200)]:
        resp, _ = await fetch(client, media.url, method, headers)
        assert resp.status == status
        assert resp.headers["Cache-Control"] == LONG_CACHE, (method, headers)


async def test_not_found_is_not_cached_long(client):
    resp, _ = await fetch(client, "/api/media/serve/987654")
    assert resp.status == 404
    assert_not_long_cached(resp)


async def test_no_content_encoding_even_when_the_client_accepts_gzip(client, media):
    for encoding in ("gzip", "gzip, deflate, br", "*"):
        for headers, length in (({}, SIZE), ({"Range": "bytes=0-999"}, 1000)):
            resp = await client.get(media.url, auto_decompress=False,
                                    headers={**headers, "Accept-Encoding": encoding})
            assert "Content-Encoding" not in resp.headers, encoding
            assert await resp.read() == media.data[:length]


async def test_no_vary_on_200_206_and_304(client, media):
    etag, _ = await etag_and_modified(client, media)
    for headers in ({}, {"Range": "bytes=0-1"}, {"If-None-Match": etag}):
        resp, _ = await fetch(client, media.url, headers={**headers, "Accept-Encoding": "gzip"})
        assert "Vary" not in resp.headers, headers


# -- item 15: Content-Disposition ----------------------------------------------------------

async def test_content_disposition_non_ascii_name_in_rfc6266_and_rfc8187_form(client):
    m = await upload(client, jpeg_bytes(), filename="relatório ção.jpg")
    resp, _ = await fetch(client, m.url)
    header = resp.headers["Content-Disposition"]
    assert header == ("inline; filename=\"relatorio cao.jpg\"; "
                      "filename*=UTF-8''relat%C3%B3rio%20%C3%A7%C3%A3o.jpg")
    # A recipient that knows RFC 8187 takes filename* (RFC 6266 §4.3).
    disposition, params = parse_content_disposition(header)
    assert (disposition, content_disposition_filename(params)) == ("inline", "relatório ção.jpg")


async def test_content_disposition_name_is_nfc_normalised(client):
    m = await upload(client, jpeg_bytes(), filename=unicodedata.normalize("NFD", "ação.jpg"))
    resp, _ = await fetch(client, m.url)
    assert resp.headers["Content-Disposition"].endswith("filename*=UTF-8''a%C3%A7%C3%A3o.jpg")


async def test_content_disposition_drops_path_and_quotes(client):
    m = await upload(client, jpeg_bytes(), filename='../../etc/pass"wd.jpg')
    resp, _ = await fetch(client, m.url)
    assert resp.headers["Content-Disposition"] == (
        "inline; filename=\"passwd.jpg\"; filename*=UTF-8''passwd.jpg")


# -- item 16: nosniff, accurate type, nothing executable inline --------------------------

async def test_nosniff_on_200_and_206(client, media):
    for headers in ({}, {"Range": "bytes=0-1"}):
        resp, _ = await fetch(client, media.url, headers=headers)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_content_type_comes_from_the_bytes_not_the_client(client):
    m = await upload(client, png_bytes(), filename="looks-like.jpg", content_type="image/jpeg")
    resp, body = await fetch(client, m.url)
    assert resp.headers["Content-Type"] == "image/png"
    assert body == m.data


async def test_svg_is_served_as_attachment(client):
    # Uploads refuse SVG; a row written by another path (a migration, the chat product)
    # must still never render in the service's origin.
    store = client.app[STORE]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    up = await store.begin_upload(file_name=f"{uuid.uuid4().hex}.svg", original_name="drawing.svg",
                                  mime_type="image/svg+xml", media_type="image")
    await up.write(svg)
    rec = await up.finish(await store.create_message())
    resp, body = await fetch(client, f"/api/media/serve/{rec.id}")
    assert resp.status == 200 and body == svg
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_jpeg_is_served_inline(client, media):
    resp, _ = await fetch(client, media.url)
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["Content-Disposition"].startswith("inline;")


# -- item 17: a client that goes away --------------------------------------------------------

class Server(TestServer):
    """The test server with a chosen ``handler_cancellation``: aiohttp's TestServer turns
    it on, while run.py's web.run_app keeps aiohttp's default (off), where a vanished
    client surfaces as a failed write instead of a cancelled handler."""

    def __init__(self, app, *, handler_cancellation: bool):
        super().__init__(app)
        self.handler_cancellation = handler_cancellation

    async def _make_runner(self, **kwargs):
        kwargs["handler_cancellation"] = self.handler_cancellation
        return await super()._make_runner(**kwargs)


async def wait_until_served(app, count: int) -> None:
    """Until the server has finished ``count`` serve requests, whatever their status (its
    request metric is recorded when the handler ends)."""
    registry = app[METRICS].registry
    for _ in range(1000):
        done = sum(sample.value for metric in registry.collect() for sample in metric.samples
                   if sample.name == "media_http_request_seconds_count"
                   and sample.labels["route"] == SERVE_ROUTE)
        if done >= count:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"the server never finished {count} serve request(s)")


@pytest.mark.parametrize("handler_cancellation", [False, True],
                         ids=["run_app_default", "handler_cancellation"])
async def test_client_gone_mid_response_logs_no_error_and_next_request_works(
        server_for, caplog, handler_cancellation):
    client = await server_for(server_cls=Server,
                              server_kwargs={"handler_cancellation": handler_cancellation},
                              store__chunk_bytes=StoreSettings.chunk_bytes)
    app = client.app
    big = await upload(client, jpeg_bytes(5 * 1024 * 1024))
    caplog.set_level(logging.ERROR)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.server.host, client.server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(raw_request("GET", big.url).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    await reader.readexactly(10_000)
    # Linger 0: close with a reset, as a player abandoning a response does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()

    await wait_until_served(app, 1)
    served = app[METRICS].registry.get_sample_value("media_served_bytes_total")
    assert served < len(big.data), "the response was cut short"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    resp, body = await fetch(client, big.url, headers={"Range": "bytes=-10"})
    assert_range(resp, body, big.data, len(big.data) - 10, len(big.data) - 1)


# -- not found ---------------------------------------------------------------------------

async def test_unknown_id_is_404_json(client):
    resp = await client.get(f"/api/media/serve/{2_000_000_000}")
    assert resp.status == 404
    assert await resp.json() == {"error": "media_not_found", "message": "media not found"}


async def test_invalid_id_is_404_json(client):
    for media_id in ("abc", "2147483648", "9" * 40, "0", "-1", "1.0", "1e3", "0x1"):
        resp = await client.get(f"/api/media/serve/{media_id}")
        assert resp.status == 404, media_id
        body = await resp.json()
        assert set(body) == {"error", "message"}, media_id
        assert body["error"] == "media_not_found", media_id


async def test_deleted_media_is_404(client):
    gone = await upload(client, jpeg_bytes(1000))
    assert (await client.delete(f"/api/media/{gone.json['id']}")).status == 204
    resp, _ = await fetch(client, gone.url, headers={"Range": "bytes=0-1"})
    assert resp.status == 404
    assert_not_long_cached(resp)


async def test_media_deleted_by_another_instance_is_404_despite_cached_metadata(
        client, server_for):
    other = await server_for()   # a second instance on the same database
    gone = await upload(client, jpeg_bytes(10 * 3 * 1024))
    resp, _ = await fetch(client, gone.url)
    assert resp.status == 200     # this instance now holds the metadata
    assert (await other.delete(f"/api/media/{gone.json['id']}")).status == 204
    for headers in ({}, {"Range": "bytes=0-1"}, {"Range": "bytes=-10"}):
        resp, body = await fetch(client, gone.url, headers=headers)
        assert resp.status == 404, headers
        assert (await resp.json())["error"] == "media_not_found"
