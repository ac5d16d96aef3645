"""GET/HEAD /api/media/serve/{mediaId}: the bytes, for players, browsers and caches.

The decision (which conditional applies, which ranges) is made first, as values, by the
pure functions of conditional.py and ranges.py; this module only acts on it. The rules
it follows, each with its RFC section, are in docs/http-serving.md (RFC 9110 §8.8, §13,
§14, §15; RFC 9111; RFC 8246).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime, timezone

from aiohttp import web

from server.errors import (
    BadRequest,
    MediaNotFound,
    MediaQuarantined,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from server.http.conditional import (
    Outcome,
    evaluate_preconditions,
    http_date,
    if_range_allows,
)
from server.http.params import parse_id
from server.http.thumbnails import THUMBNAIL, ThumbnailRequest, parse_thumbnail
from server.http.ranges import ByteRange, Unsatisfiable, coalesce, parse_range
from server.api.shared_reads import SharedReads
from server.limits.ranges import too_costly
from server.observability.metrics import METRICS
from server.runtime.sending import STREAM_SLOTS, Sender, SendTimeout, StreamSlots
from server.observability.paths import safe_path
from server.security.hooks import media_cache_control, proxy_cache_headers
from server.security.serving import safety_headers
from server.processing.ondemand import thumbnail
from server.processing.pipeline import PROCESSING
from server.processing.variants import stat_variant
from server.settings import SETTINGS
from server.store.media import SHORT_READ_CHUNKS, MediaRecord, MediaStore, StorageCorrupt
from server.store.media import STORE

log = logging.getLogger(__name__)

Body = AsyncGenerator[bytes, None]


def entity_tag(rec: MediaRecord) -> str:
    """Strong (RFC 9110 §8.8.3), from the content: the same on every instance and
    replica."""
    return f'"{rec.sha256.hex()}"'


def last_modified(rec: MediaRecord, now: datetime) -> datetime:
    # Whole seconds, as HTTP dates carry; never later than Date (RFC 9110 §8.8.2.1).
    return min(rec.created_at, now).astimezone(timezone.utc).replace(microsecond=0)


def representation_headers(rec: MediaRecord, etag: str, modified: datetime,
                           cache: str) -> dict[str, str]:
    """What 200, 206 and HEAD all carry (a 206 repeats the 200's: RFC 9110 §15.3.7).
    Types a browser could run go out as sandboxed attachments (security/serving.py)."""
    return {
        "ETag": etag,
        "Last-Modified": http_date(modified),
        "Cache-Control": cache,
        "Content-Type": rec.mime_type,
        **safety_headers(rec.mime_type, rec.original_name),
        "Accept-Ranges": "bytes",
    }


async def serve_media(request: web.Request) -> web.StreamResponse:
    media_id = parse_id(request.match_info["mediaId"])
    if media_id is None:
        raise MediaNotFound()
    store = request.app[STORE]
    variant = request.query.get("variant")
    if variant == THUMBNAIL:
        rec = await _thumbnail(request, store, media_id)
    else:
        # A variant's record carries its media's quarantine (sql/processing.sql).
        rec = await (store.stat_for_serving(media_id) if variant is None
                     else stat_variant(store, media_id, variant))
    refuse_quarantined(rec)
    return await serve_record(request, store, rec, headers=proxy_cache_headers(request))


def refuse_quarantined(rec: MediaRecord) -> None:
    """451 (RFC 7725) for quarantined content, before any conditional or range: a
    304 would tell a cache its copy is still good. The error is no-store."""
    if rec.quarantine_reason is not None:
        raise MediaQuarantined()


async def _thumbnail(request: web.Request, store: MediaStore, media_id: int) -> MediaRecord:
    """The thumbnail the query asks for, made (in the worker pool) and stored on its
    first request; then served like any variant."""
    req = parse_thumbnail(request.query)
    if not isinstance(req, ThumbnailRequest):
        raise BadRequest(req)
    return await thumbnail(store, request.app[PROCESSING], media_id, req)


async def serve_record(request: web.Request, store, rec: MediaRecord, *,
                       etag: str | None = None,
                       headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Answer GET/HEAD for ``rec``, whose bytes ``store.read(rec, start, end)`` yields
    (the media store, or another source of bytes such as the legacy folder). ``etag``
    replaces the one derived from the content; ``headers`` go on every answer, 304 and
    errors included, over the usual ones (a legacy file's Cache-Control, Sunset...)."""
    extra = headers or {}
    cache = extra.get("Cache-Control") or media_cache_control(request)
    etag = etag or entity_tag(rec)
    modified = last_modified(rec, datetime.now(timezone.utc))
    h = request.headers

    # RFC 9110 §13.2.2: preconditions first, Range last.
    outcome = evaluate_preconditions(
        request.method, etag, modified,
        if_match=_joined(h, "If-Match"), if_none_match=_joined(h, "If-None-Match"),
        if_modified_since=h.get("If-Modified-Since"),
        if_unmodified_since=h.get("If-Unmodified-Since"))
    if outcome is Outcome.NOT_MODIFIED:
        # §15.4.5: no body; the validators and caching headers a 200 would have.
        return web.Response(status=304, headers={
            "ETag": etag, "Cache-Control": cache, "Last-Modified": http_date(modified),
            **extra})
    if outcome is Outcome.PRECONDITION_FAILED:
        raise PreconditionFailed(headers=extra)

    headers = {**representation_headers(rec, etag, modified, cache), **extra}
    ranges = _ranges_to_send(request, rec.file_size, etag, modified)
    if too_costly(ranges, rec.chunk_size, request.app[SETTINGS].store.max_range_chunks):
        ranges = None   # RFC 9110 §14.2: ignored, the whole file (server/limits/ranges.py)
    if isinstance(ranges, Unsatisfiable):
        raise RangeNotSatisfiable(f"the file has {rec.file_size} bytes",
                                  headers={"Content-Range": f"bytes */{rec.file_size}",
                                           **extra})
    if request.method == "HEAD":
        return _head(headers, rec.file_size)
    if ranges is None:
        return await _send(request, store, rec, 200, headers,
                           [ByteRange(0, rec.file_size - 1)] if rec.file_size else [])
    if len(ranges) == 1:
        r = ranges[0]
        headers["Content-Range"] = f"bytes {r.start}-{r.end}/{rec.file_size}"
        return await _send(request, store, rec, 206, headers, ranges)
    return await _send_multipart(request, store, rec, headers, ranges)


def _joined(headers, name: str) -> str | None:
    """A list header sent as several lines is one list (RFC 9110 §5.3)."""
    values = headers.getall(name, None)
    return None if values is None else ", ".join(values)


def _ranges_to_send(request: web.Request, size: int, etag: str, modified: datetime):
    """None (send it all), UNSATISFIABLE, or the ranges, merged where they overlap."""
    header = request.headers.get("Range")
    # Range is for GET only (RFC 9110 §14.2); a failed If-Range means the whole file
    # (§13.1.5).
    if request.method != "GET" or header is None:
        return None
    if not if_range_allows(request.headers.get("If-Range"), etag, modified):
        return None
    ranges = parse_range(header, size)
    if ranges is None or isinstance(ranges, Unsatisfiable):
        return ranges
    return coalesce(ranges)


def _head(headers: dict[str, str], size: int) -> web.Response:
    # RFC 9110 §9.3.2 / §8.6: the Content-Length the 200 would carry, without the body.
    # web.Response refuses the content_length setter (it counts its own, empty, body),
    # but keeps an explicit header on HEAD.
    return web.Response(status=200, headers={**headers, "Content-Length": str(size)})


class _Response(web.StreamResponse):
    """A streamed response whose headers leave with the first piece of the body, in
    one write: aiohttp sends a StreamResponse's headers at prepare() in a system call
    of their own (its web.Response, which knows its body, already buffers them). For
    a small photo that is one send instead of two."""
    _send_headers_immediately = False


async def _first_and_rest(stream: Body, store, rec: MediaRecord) -> tuple[bytes, Body]:
    """Fetch the first piece before any header goes out, so a file deleted since its
    metadata was read is still a clean 404 (410 if retention took it) rather than a
    truncated 200."""
    try:
        return await anext(stream), stream
    except StorageCorrupt:
        await stream.aclose()
        if isinstance(store, MediaStore):   # not the legacy folder
            await store.raise_if_purged(rec.id)
        raise MediaNotFound() from None


async def _send(request: web.Request, store: MediaStore, rec: MediaRecord, status: int,
                headers: dict[str, str], ranges: list[ByteRange]) -> web.StreamResponse:
    resp = _Response(status=status, headers=headers)
    resp.content_length = sum(r.length for r in ranges)
    if not ranges:
        return await _stream(request, resp, _chain(b"", None))
    r = ranges[0]
    # A long read takes a stream slot first (server/runtime/sending.py); a short one
    # (a photo, a seek) is a chunk or two, mostly from the chunk cache.
    slots = request.app[STREAM_SLOTS] \
        if r.end // rec.chunk_size - r.start // rec.chunk_size >= SHORT_READ_CHUNKS else None
    if slots is not None:
        await slots.acquire()
    try:
        first, stream = await _first_and_rest(store.read(rec, r.start, r.end), store, rec)
    except BaseException:
        if slots is not None:
            slots.release()
        raise
    # Only the body holds the first piece from here: a stalled client's body is
    # dropped (server/runtime/sending.py), and the piece must go with it.
    body = _chain(first, stream)
    del first

    async def send(sender: Sender) -> None:
        # A stalled client's stream is dropped and reopened where it stopped.
        await sender.send_stream(body, r.start, r.end,
                                 lambda start, end: store.read(rec, start, end))
    return await _stream(request, resp, body, send, slots)


async def _send_multipart(request: web.Request, store: MediaStore, rec: MediaRecord,
                          headers: dict[str, str], ranges: list[ByteRange]):
    """Several ranges: multipart/byteranges (RFC 9110 §14.6), parts in request order
    (ranges were merged beforehand when they overlapped, so the body stays bounded)."""
    boundary = uuid.uuid4().hex
    ctype = headers.pop("Content-Type")
    headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    heads = [(f"--{boundary}\r\nContent-Type: {ctype}\r\n"
              f"Content-Range: bytes {r.start}-{r.end}/{rec.file_size}\r\n\r\n").encode()
             for r in ranges]
    tail = f"--{boundary}--\r\n".encode()
    resp = _Response(status=206, headers=headers)
    resp.content_length = (sum(len(p) + r.length + 2 for p, r in zip(heads, ranges))
                           + len(tail))
    reads = SharedReads(store, rec)   # neighbouring ranges in one chunk: one read
    first, stream = await _first_and_rest(reads.read(ranges[0]), store, rec)
    body = _chain(first, stream)
    del first

    def reopen(start: int, end: int) -> Body:
        return reads.read(ByteRange(start, end))

    async def send(sender: Sender) -> None:
        # Each part as a single range goes: a stalled client lets go of the chunk
        # it was sent from, and of the one kept for the next part (reads.forget).
        for i, (head, r) in enumerate(zip(heads, ranges)):
            await sender.send_all(head)
            await sender.send_stream(body if i == 0 else reads.read(r), r.start, r.end,
                                     reopen, on_stall=reads.forget)
            await sender.send_all(b"\r\n")
        await sender.send_all(tail)

    return await _stream(request, resp, body, send)


async def _chain(first: bytes, rest: Body | None) -> Body:
    try:
        if first:
            piece, first = first, b""   # not kept once sent
            yield piece
            del piece
        if rest is not None:
            async for piece in rest:
                yield piece
                del piece   # not held while the next one is read (runtime/sending.py)
    finally:
        # Closed early (client gone): stop the store's read-ahead now, not at GC.
        if rest is not None:
            await rest.aclose()


async def _stream(request: web.Request, resp: web.StreamResponse, body: Body | None,
                  send: Callable[[Sender], Awaitable[None]] | None = None,
                  slots: StreamSlots | None = None) -> web.StreamResponse:
    """Send the headers, then the body: ``send(sender)`` when given, else every piece
    of ``body``. ``slots``: the stream slot taken for ``body``, which ``send`` gives
    back."""
    metrics = request.app[METRICS]
    sender = Sender(request, resp, request.app[SETTINGS].server.send_timeout,
                    metrics.bytes_served.inc, slots)
    try:
        try:
            await resp.prepare(request)
        except BaseException:
            if slots is not None:
                slots.release()   # send never ran: the slot is still ours
            raise
        if send is not None:
            await send(sender)
        else:
            async for piece in body:
                await sender.send_all(piece)
        await resp.write_eof()
    except SendTimeout:
        # server/runtime/sending.py: the connection is closed already.
        log.info("send timed out on %s: the client read nothing for %g s", safe_path(request),
                 sender.timeout)
    except ConnectionError:
        # Players abandon responses all the time (seeks, scrubbing). A reset
        # is ConnectionResetError; a close seen while waiting to drain is a bare
        # ConnectionError("Connection lost") (uvloop, as run.py serves).
        log.debug("client went away during %s", safe_path(request))
    except StorageCorrupt:
        # Headers are gone already; cutting the connection is the only honest signal.
        log.warning("media vanished mid-response on %s", safe_path(request))
        if request.transport is not None:
            request.transport.close()
    finally:
        if body is not None:
            await body.aclose()
    return resp
