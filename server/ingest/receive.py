"""Receiving a file's bytes from any source (an upload, later a URL, a legacy file or
tus) into a new, still invisible upload in the media store.

Whatever the source, the same rules apply: the type is decided from the first bytes by
the one type table (server/http/media_types.py), the size is counted as the bytes
arrive (413 the moment the limit is crossed), every read is bounded by the idle timeout
(408), and any failure leaves nothing behind.
"""
from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from server.errors import (
    EmptyFile,
    PayloadTooLarge,
    UnsupportedMediaType,
    UploadTimeout,
)
from server.http.disposition import sanitize_filename
from server.http.media_types import SNIFF_BYTES, sniff
from server.hygiene.guard import IngestGuard
from server.limits.uploads import Pace
from server.processing.pipeline import Job, Processing
from server.processing.policy import Options
from server.store.media import MediaStore, StoredBytes, Upload

Reader = Callable[[], Awaitable[bytes]]

# What reading a client's body raises when the client vanished or sent a broken body:
# nothing to store, nobody to blame but the network, so no stack trace.
# (RequestPayloadError: a body the parser could not decode, e.g. bad gzip.)
BODY_ERRORS = (aiohttp.ClientError, HttpProcessingError, web.RequestPayloadError,
               ConnectionError, EOFError)

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:   # aiohttp's own dependency there; raises asyncio.TimeoutError too
    from async_timeout import timeout as _timeout


@dataclasses.dataclass(frozen=True)
class Limits:
    max_bytes: int          # MEDIA_MAX_UPLOAD_BYTES
    idle_timeout: float     # MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS
    pace: Pace | None = None   # the minimum average rate (server/limits/uploads.py)


async def within(limits: Limits, awaitable: Awaitable):
    """Every read from the client: one that waits longer than the idle timeout, or past
    the point where the upload falls below its minimum pace, ends the upload (408),
    whichever part of the body it was waiting for."""
    loop = asyncio.get_running_loop()
    timeout = limits.idle_timeout
    if limits.pace is not None:
        timeout = min(timeout, max(0.0, limits.pace.deadline() - loop.time()))
    try:
        # A timeout scope, not wait_for: wait_for wrapped every 64 KiB read in a task of
        # its own, a tenth of a large upload's CPU.
        async with _timeout(timeout):
            got = await awaitable
    except asyncio.TimeoutError:
        if limits.pace is not None:
            limits.pace.check(loop.time())   # UploadTooSlow when that was the reason
        raise UploadTimeout() from None
    if limits.pace is not None:
        limits.pace.feed(loop.time(), len(got) if isinstance(got, bytes) else 0)
    return got


async def receive(store: MediaStore, read_piece: Reader, client_name: str | None,
                  limits: Limits, processing: Processing | None = None,
                  options: Options | None = None, guard: IngestGuard | None = None,
                  reuse: StoredBytes | None = None) -> Upload | Job:
    """Stream one file from ``read`` into a new, still invisible upload.

    The caller finishes it (``upload.finish(message_id)``) or aborts it; on any failure
    here the upload is already aborted and nothing is left behind. With ``processing``,
    the type policy and limits are MEDIA_ALLOWED_TYPES and MEDIA_MAX_<TYPE>_BYTES, and
    ``finish`` first processes the file (server/processing); ``options`` may still be
    changed on the returned job until then (form fields after the file). ``reuse``:
    the bytes ``read`` gives are stored already (a tus upload's); kept as they are,
    they become the media without being written again.

    ``guard`` (server/hygiene/guard.py) sees every piece as it arrives (quota, virus
    scan) and rides on the returned upload to its finish or abort.
    """
    limit = limits.max_bytes

    async def read() -> bytes:
        piece = await within(limits, read_piece())
        if guard is not None and piece:
            await guard.feed(piece)
        return piece

    upload: Upload | Job | None = None
    media_type: str | None = None   # known once detected, for the 413's message
    try:
        if guard is not None:
            await guard.start()
        buf = bytearray()
        eof = False
        while len(buf) < SNIFF_BYTES:
            piece = await read()
            if not piece:
                eof = True
                break
            buf += piece
            if len(buf) > limit:
                raise PayloadTooLarge()
        if not buf:
            raise EmptyFile()
        head = bytes(buf)
        del buf
        if processing is not None:
            found = processing.admit(head, complete=eof)
            limit, media_type = processing.limit(found, limit), found.media_type
            if len(head) > limit:
                raise _too_large(media_type, limit)
            upload = await processing.start(
                store, found, sanitize_filename(client_name) if client_name else None,
                options, reuse)
        else:
            kind = sniff(head)
            if kind is None:
                raise UnsupportedMediaType()
            file_name = f"{uuid.uuid4().hex}.{kind.extension}"
            upload = await store.begin_upload(
                file_name=file_name, original_name=sanitize_filename(client_name or file_name),
                mime_type=kind.mime_type, media_type=kind.media_type, reuse=reuse)
        upload.guard = guard
        await upload.write(head)
        del head
        while piece := await read():
            if upload.size + len(piece) > limit:
                raise _too_large(media_type, limit)
            await upload.write(piece)
        if guard is not None:
            await guard.end()
        return upload
    except BaseException:
        if upload is not None:
            await upload.abort()
        elif guard is not None:
            await guard.release()
        raise


def _too_large(media_type: str | None, limit: int) -> PayloadTooLarge:
    if media_type is None:
        return PayloadTooLarge()
    return PayloadTooLarge(f"{media_type} files are limited to {limit} bytes")
