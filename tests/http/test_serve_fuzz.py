"""Random header values against the serving route: a clear answer, never a 500.

Seeded, so a failure reproduces; the pieces are the ones that break parsers (digits at
the edges of sizes, separators, quotes, dates, non-ASCII). Half the Range values are
nearly valid range lists, so that 206 answers, single and multipart, are common and
every byte of them is checked.
"""
import collections
import logging
import random

import aiohttp
import pytest

from tests.byteranges import byteranges, content_range
from tests.media import jpeg_bytes

PIECES = ["bytes", "BYTES", "items", "=", "-", ",", " ", "\t", "0", "1", "9", "99999999999999999999",
          '"', "W/", "*", "abc", '"abc"', "é", "GMT", "Sun, 06 Nov 1994 08:49:37 GMT",
          "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", ";", "%", "\\"]
HEADERS = ["Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since",
           "If-Unmodified-Since"]


def check_partial(resp, body: bytes, data: bytes, headers) -> None:
    """Every byte of a 206, one part or several, is where its Content-Range says."""
    if resp.content_type == "multipart/byteranges":
        parts = byteranges(resp, body)
        assert len(parts) >= 2, headers   # one range is never multipart
        for part_headers, part in parts:
            assert part_headers["Content-Type"] == "image/jpeg", headers
            first, last = content_range(part_headers["Content-Range"], len(data))
            assert part == data[first:last + 1], headers
    else:
        first, last = content_range(resp.headers["Content-Range"], len(data))
        assert body == data[first:last + 1], headers


def garbage(rng: random.Random, etag: str, size: int) -> str:
    parts = PIECES + [etag, str(size), str(size - 1), str(size + 1)]
    return "".join(rng.choice(parts) for _ in range(rng.randint(0, 8)))


def range_list(rng: random.Random, size: int) -> str:
    """``bytes=`` and a few specs, short ones anywhere and others at the file's edges;
    now and then one is spoilt (which makes the whole header ignored, rule 3)."""
    edges = [0, 1, size - 1, size, size + 1]

    def spec() -> str:
        start = rng.randrange(size + 10)
        edge_a, edge_b = sorted(rng.sample(edges, 2))
        return rng.choices(
            [f"{start}-{start + rng.randint(0, 400)}", f"{start}-",
             f"-{rng.choice(edges + [rng.randint(0, 300)])}", f"{edge_a}-{edge_b}",
             f"{edge_b}-{edge_a}", rng.choice(PIECES)],
            weights=[16, 1, 1, 1, 1, 1])[0]

    return rng.choice(["bytes=", "bytes=", "BYTES=", "bytes= "]) + rng.choice(
        [",", ", ", " ,"]).join(spec() for _ in range(rng.randint(1, 5)))


def header_value(rng: random.Random, name: str, etag: str, size: int) -> str:
    if name == "Range" and rng.random() < 0.5:
        return range_list(rng, size)
    return garbage(rng, etag, size)


@pytest.mark.parametrize("seed", range(4))
async def test_random_headers_never_break_serving(client, message_id, caplog, seed):
    caplog.set_level(logging.ERROR)
    data = jpeg_bytes(20_000)
    form = aiohttp.FormData()
    form.add_field("message_id", str(message_id))
    form.add_field("file", data, filename="a.jpg", content_type="image/jpeg")
    meta = await (await client.post("/api/media/upload-production", data=form)).json()
    etag = f'"{meta["sha256"]}"'
    rng = random.Random(seed)
    sent = 0
    partial: collections.Counter[str] = collections.Counter()
    for _ in range(100):
        names = set(rng.sample(HEADERS, rng.randint(0, 2)))
        if rng.random() < 0.6:
            names.add("Range")
        headers = {h: header_value(rng, h, etag, len(data)) for h in sorted(names)}
        method = rng.choice(["GET", "GET", "HEAD"])
        try:
            resp = await client.request(method, meta["url"], headers=headers)
        except ValueError:   # a value the client itself refuses to send (e.g. é)
            continue
        body = await resp.read()
        sent += 1
        assert resp.status in (200, 206, 304, 412, 416), (headers, resp.status)
        if resp.status == 200 and method == "GET":
            assert body == data, headers
        if resp.status == 206 and method == "GET":
            check_partial(resp, body, data, headers)
            partial[resp.content_type] += 1
    assert sent > 50
    # Each seed reaches both kinds of 206 (a failure here means the generator changed).
    assert partial["multipart/byteranges"] and partial["image/jpeg"], partial
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
