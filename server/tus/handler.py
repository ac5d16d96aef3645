"""The tus 1.0 routes: OPTIONS, POST (creation, creation-with-upload, defer-length),
HEAD, PATCH, DELETE (termination), with X-HTTP-Method-Override on POST.

Type detection runs at completion on the stored head (the first PATCH may be a few
bytes only): until then the media_files row carries a neutral placeholder type. A
refused type answers the completing request with the plain upload's 415 and the upload
is removed. Every request is authenticated by the access middleware (write key or an
upload token); here, only the creator may go on with an upload.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from aiohttp import web

from server import appkeys
from server.api.upload import _BODY_ERRORS, parse_message_id
from server.errors import (
    BadRequest,
    EmptyFile,
    MediaError,
    MessageNotFound,
    PayloadTooLarge,
    PreconditionFailed,
    TusChecksumMismatch,
    TusNotCreator,
    TusOffsetMismatch,
    TusUploadNotFound,
    UnsupportedMediaType,
    UnsupportedRequestType,
    UploadAborted,
    UploadExpired,
)
from server.http.disposition import sanitize_filename
from server.ingest.receive import Limits, within
from server.security import PRINCIPAL, SIGNER
from server.security.audit import audited
from server.security.forwarded import in_networks, parse_address
from server.security.hooks import check_upload_message, upload_limit
from server.tus import headers as h
from server.tus.store import TusState, TusStore

log = logging.getLogger(__name__)

READ_BYTES = 256 * 1024
# A PATCH with Upload-Checksum is held until verified (a mismatched body must leave no
# trace); clients send checksummed PATCHes in chunks, this bounds one.
MAX_CHECKSUM_PATCH = 64 * 1024 * 1024
OFFSET_TYPE = "application/offset+octet-stream"
BASE = "/api/media/tus/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tus_store(request: web.Request) -> TusStore:
    return TusStore(request.app[appkeys.STORE])


def protocol(handler: Handler) -> Handler:
    """Tus-Resumable checked (412) and sent on every answer, errors included;
    malformed headers become 400."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            version = request.headers.get("Tus-Resumable")
            if version != h.VERSION:
                raise PreconditionFailed(
                    f"Tus-Resumable {h.VERSION} is required",
                    headers={"Tus-Version": h.VERSION})
            try:
                response = await handler(request)
            except h.TusHeaderError as e:
                raise BadRequest(str(e)) from None
        except MediaError as e:
            e.headers = {**e.headers, "Tus-Resumable": h.VERSION}
            raise
        response.headers["Tus-Resumable"] = h.VERSION
        return response
    return wrapped


async def options(request: web.Request) -> web.Response:
    """Capabilities; a CORS preflight (Access-Control-Request-Method) is answered as
    one."""
    if request.headers.get("Access-Control-Request-Method"):
        from server.security.cors import preflight
        resp = await preflight(request)
        return resp
    settings = request.app[appkeys.SETTINGS]
    return web.Response(status=204, headers={
        "Tus-Resumable": h.VERSION, "Tus-Version": h.VERSION, "Tus-Extension": h.EXTENSIONS,
        "Tus-Max-Size": str(settings.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(h.CHECKSUM_ALGORITHMS)})


def _location(request: web.Request, upload_id: uuid.UUID) -> str:
    settings = request.app[appkeys.SETTINGS]
    scheme, host = request.scheme, request.host
    # Behind a trusted proxy the client's scheme and host are the forwarded ones.
    if in_networks(parse_address(request.remote), settings.trusted_proxies):
        scheme = (request.headers.get("X-Forwarded-Proto") or scheme).split(",")[0].strip()
        host = (request.headers.get("X-Forwarded-Host") or host).split(",")[0].strip()
    return f"{scheme}://{host}{BASE}{upload_id}"


def _expires(state_expires) -> str:
    return format_datetime(state_expires, usegmt=True)


@protocol
async def create(request: web.Request) -> web.StreamResponse:
    method = h.method_of(request.method, request.headers.get("X-HTTP-Method-Override"))
    if method != "POST":
        raise BadRequest(f"{method} needs an upload URL")
    settings = request.app[appkeys.SETTINGS]
    length = h.parse_number("Upload-Length", request.headers.get("Upload-Length"))
    deferred = h.parse_defer_length(request.headers.get("Upload-Defer-Length"))
    if (length is None) == (not deferred):
        raise BadRequest("send Upload-Length, or Upload-Defer-Length: 1")
    limit = upload_limit(request, settings.max_upload_bytes)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Upload-Length exceeds {limit} bytes")
    if length == 0:
        raise EmptyFile()
    meta = h.parse_metadata(request.headers.get("Upload-Metadata"))
    message_id = parse_message_id(meta.get("message_id"))
    check_upload_message(request, message_id)
    store = tus_store(request)
    if not await store.media.message_exists(message_id):
        raise MessageNotFound()
    name = sanitize_filename(meta.get("filename") or "upload")
    upload_id = await store.create(
        message_id=message_id, creator=request[PRINCIPAL].name, upload_length=length,
        metadata=meta, original_name=name, expiry_seconds=settings.tus_expiry_seconds)
    state = await store.get(upload_id)
    assert state is not None
    headers = {"Location": _location(request, upload_id),
               "Upload-Expires": _expires(state.expires_at)}
    if request.body_exists and request.content_type == OFFSET_TYPE:
        resp = await _patch(request, store, state, 0)   # creation-with-upload
        resp.set_status(201)
        resp.headers.update(headers)
        return resp
    return web.Response(status=201, headers={**headers, "Upload-Offset": "0"})


async def _state(request: web.Request, store: TusStore) -> TusState:
    try:
        upload_id = uuid.UUID(request.match_info["uploadId"])
    except ValueError:
        raise TusUploadNotFound() from None
    state = await store.get(upload_id)
    if state is None:
        raise TusUploadNotFound()
    if request[PRINCIPAL].name != state.creator:
        raise TusNotCreator()
    if state.expired and not state.complete:
        raise UploadExpired("the upload expired")
    return state


def _media_headers(request: web.Request, rec) -> dict[str, str]:
    return {"Media-Id": str(rec.id), "Media-Url": request.app[SIGNER].media_url(rec.id)}


@protocol
async def head(request: web.Request) -> web.Response:
    return await _head(request)


async def _head(request: web.Request) -> web.Response:
    store = tus_store(request)
    state = await _state(request, store)
    headers = {"Cache-Control": "no-store", "Upload-Offset": str(state.offset),
               "Upload-Expires": _expires(state.expires_at)}
    if state.upload_length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(state.upload_length)
    if state.metadata:
        headers["Upload-Metadata"] = h.encode_metadata(state.metadata)
    if state.complete and (rec := await store.record(state.id)) is not None:
        headers.update(_media_headers(request, rec))
    return web.Response(status=200, headers=headers)


@protocol
async def override(request: web.Request) -> web.StreamResponse:
    """POST on an upload URL: X-HTTP-Method-Override says what it means."""
    method = h.method_of("POST", request.headers.get("X-HTTP-Method-Override"))
    if method == "PATCH":
        return await _patch_route(request)
    if method == "DELETE":
        return await _delete(request)
    if method == "HEAD":
        return await _head(request)
    raise BadRequest("POST on an upload URL needs X-HTTP-Method-Override")


@protocol
async def patch(request: web.Request) -> web.StreamResponse:
    return await _patch_route(request)


async def _patch_route(request: web.Request) -> web.StreamResponse:
    if request.content_type != OFFSET_TYPE:
        raise UnsupportedRequestType(f"PATCH needs Content-Type: {OFFSET_TYPE}")
    offset = h.parse_number("Upload-Offset", request.headers.get("Upload-Offset"))
    if offset is None:
        raise BadRequest("Upload-Offset is required")
    store = tus_store(request)
    state = await _state(request, store)
    return await _patch(request, store, state, offset)


async def _patch(request: web.Request, store: TusStore, state: TusState,
                 offset: int) -> web.StreamResponse:
    settings = request.app[appkeys.SETTINGS]
    if state.complete or offset != state.offset:
        raise TusOffsetMismatch(headers={"Upload-Offset": str(state.offset)})
    length = state.upload_length
    declared = h.parse_number("Upload-Length", request.headers.get("Upload-Length"))
    limit = upload_limit(request, settings.max_upload_bytes)
    if declared is not None:
        if length is not None and declared != length:
            raise BadRequest("Upload-Length cannot change")
        if declared > limit:
            raise PayloadTooLarge(f"Upload-Length exceeds {limit} bytes")
        if declared < state.offset:
            raise BadRequest("Upload-Length is below the offset")
        length = declared
    checksum = h.parse_checksum(request.headers.get("Upload-Checksum"))
    end = length if length is not None else limit
    if request.content_length is not None and offset + request.content_length > end:
        raise PayloadTooLarge("the body goes past Upload-Length")   # before reading it
    lock_id = await store.lock(state.id)
    try:
        writer = store.writer(state, lock_id)
        await _receive(request, writer, offset, end, checksum, settings)
        if length is not None and length != state.upload_length:
            await writer.save(upload_length=length)
        if length is not None and writer.offset == length:
            return await _complete(request, store, state, writer)
        await writer.save(release=True)
        return web.Response(status=204, headers={
            "Upload-Offset": str(writer.offset),
            "Upload-Expires": _expires(state.expires_at)})
    finally:
        await store.unlock(state.id, lock_id)


async def _receive(request: web.Request, writer, offset: int, end: int, checksum,
                   settings) -> None:
    """The body into the writer; past ``end`` is 413. With a checksum the body is held
    and verified first (460 keeps nothing); without, a cut-off body keeps what came."""
    limits = Limits(end, settings.upload_idle_timeout)
    held = bytearray() if checksum else None
    got = 0
    try:
        while piece := await within(limits, request.content.read(READ_BYTES)):
            got += len(piece)
            if offset + got > end:
                raise PayloadTooLarge("the body goes past Upload-Length")
            if held is not None:
                if len(held) + len(piece) > MAX_CHECKSUM_PATCH:
                    raise PayloadTooLarge(
                        f"a PATCH with Upload-Checksum may carry {MAX_CHECKSUM_PATCH} bytes")
                held += piece
            else:
                await writer.write(piece)
    except _BODY_ERRORS as e:
        request.content.feed_eof()
        if held is None:
            # Keep what arrived: the client asks HEAD and resumes from there. Shielded:
            # a cancelled handler (client gone) must still keep its bytes.
            await asyncio.shield(writer.save(release=True))
        log.info("tus PATCH interrupted at %d: %s", writer.offset, e.__class__.__name__)
        raise UploadAborted() from None
    if checksum is not None and held is not None:
        algo, digest = checksum
        if hashlib.new(algo, held).digest() != digest:
            raise TusChecksumMismatch()
        await writer.write(bytes(held))


async def _complete(request: web.Request, store: TusStore, state: TusState,
                    writer) -> web.StreamResponse:
    await writer.last()
    async with audited(request, "upload") as audit:
        audit.note(message_id=state.message_id)
        rec = await store.finalize(state, writer.offset, audit=audit)
    if rec is None:
        await store.terminate(state.id)
        raise UnsupportedMediaType()
    request.app[appkeys.METRICS].uploads.labels(rec.media_type).inc()
    request.app[appkeys.METRICS].bytes_received.inc(rec.file_size)
    return web.Response(status=204, headers={
        "Upload-Offset": str(writer.offset), **_media_headers(request, rec)})


@protocol
async def delete(request: web.Request) -> web.Response:
    return await _delete(request)


async def _delete(request: web.Request) -> web.Response:
    store = tus_store(request)
    state = await _state(request, store)
    if state.complete:
        raise TusUploadNotFound("the upload is complete; delete the media instead")
    lock_id = await store.lock(state.id)
    try:
        await store.terminate(state.id)
    finally:
        await store.unlock(state.id, lock_id)
    return web.Response(status=204)
