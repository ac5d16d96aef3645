"""The tus 1.0 routes: OPTIONS, POST (creation, creation-with-upload, defer-length),
HEAD, PATCH, DELETE (termination), with X-HTTP-Method-Override on POST.

Completion runs the plain upload's pipeline: the received bytes are streamed back from
the store through ``ingest.receive`` and a processing ``Job`` (type detection, limits,
bomb and truncation checks, facts, compression and metadata stripping, previews and
variants), and the processed media is made visible in the same transaction that points
the upload at it. Until then the received bytes sit in an invisible media_files row
with a neutral placeholder type. A refused file answers the completing request with
the plain upload's status and code, and the upload is removed (later requests: 404).

The lease covers the whole completion (renewed while it is processed): meanwhile other
requests for the upload get 423. If the instance dies mid-processing, its half-made
media is invisible and reclaimed with the instance's other uploads; once the lease has
run out, the next HEAD (or an empty PATCH at the final offset) runs the completion
again.

A client that goes away while its PATCH or HEAD completes the upload stops the
completion (server/runtime/disconnect.py), as a plain upload's processing stops: the
half-made media is removed, the lease is given back at once, and the upload stays
complete in bytes, so the next HEAD (or an empty PATCH at the final offset) runs the
completion again from the received bytes; nothing the client sent is lost. Going on
instead would keep a worker busy for an answer nobody may ask for, and would hold the
lease against the client's own DELETE (tus-js-client aborts a request, then terminates
the upload: 423 until the processing ended, and then the media was kept after all).
The cost: a client that loses its connection mid-completion and comes back pays for
the processing again.

Every request is authenticated by the access middleware (write key or an upload
token); here, only the creator (that very key or token, not its name) may go on with
an upload: anyone else gets 404, as if it did not exist (and an audit row). A key or
token has at most MEDIA_TUS_MAX_OPEN_PER_CLIENT unfinished uploads, and a token's
max_bytes bounds them all together.

A PATCH (and a creation with a body) is an upload like the plain one: it takes an
upload slot, holds at most a chunk in memory, writes each byte once, and stops at
its next read when the server shuts down.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from email.utils import format_datetime

from aiohttp import web

from server.api.deliveries import check_upload_send, enqueue_send
from server.api.upload import SEND_FIELDS, parse_message_id
from server.errors import (
    BadRequest,
    EmptyFile,
    MediaError,
    MessageNotFound,
    PayloadTooLarge,
    PreconditionFailed,
    QuotaExceeded,
    ServiceUnavailable,
    TusChecksumMismatch,
    TusLocked,
    TusOffsetMismatch,
    TusUploadNotFound,
    UnsupportedRequestType,
    UploadAborted,
    UploadExpired,
)
from server.http.disposition import sanitize_filename
from server.hygiene.guard import QuotaMeter, guard_for
from server.hygiene.quotas import check_rate, check_room
from server.ingest.receive import BODY_ERRORS, Limits, receive, within
from server.limits.uploads import UPLOAD_SLOTS, refuse_content_coding
from server.observability.metrics import METRICS
from server.processing.pipeline import PROCESSING
from server.processing.policy import options_from
from server.runtime.disconnect import cancelled_when_gone
from server.security import PRINCIPAL, SIGNER
from server.security.audit import audited, entry_for, record
from server.security.forwarded import in_networks, parse_address
from server.security.hooks import check_may_send, check_upload_message, upload_limit
from server.settings import SETTINGS
from server.store.media import STORE
from server.tus import headers as h
from server.tus.store import TusState, TusStore, Writer

log = logging.getLogger(__name__)

READ_BYTES = 256 * 1024
# The bodies of this app's PATCHes being read now, for stop_receiving.
RECEIVING = web.AppKey("tus_receiving", set)
OFFSET_TYPE = "application/offset+octet-stream"
BASE = "/api/media/tus/"
UPLOAD = BASE + "{uploadId}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# A file refused at completion (its type, size, content, or its message gone): the
# upload can never become media, so it is removed. Other failures (a lost lease, the
# database away) leave it for a retry.
REFUSED = (400, 404, 413, 415, 422)


def tus_store(request: web.Request) -> TusStore:
    return TusStore(request.app[STORE],
                    request.app[SETTINGS].tus.lease_seconds)


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
            if e.status == 403:   # a credential refused what it asked: as the plain upload
                await _audit_refusal(request, e, _message_of(request))
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
    settings = request.app[SETTINGS]
    return web.Response(status=204, headers={
        "Tus-Resumable": h.VERSION, "Tus-Version": h.VERSION, "Tus-Extension": h.EXTENSIONS,
        "Tus-Max-Size": str(settings.uploads.max_bytes),
        "Tus-Checksum-Algorithm": ",".join(h.CHECKSUM_ALGORITHMS)})


def _location(request: web.Request, upload_id: uuid.UUID) -> str:
    settings = request.app[SETTINGS]
    trusted = in_networks(parse_address(request.remote), settings.security.trusted_proxies)
    origin = h.origin(request.scheme, request.host,
                      request.headers.get("X-Forwarded-Proto") if trusted else None,
                      request.headers.get("X-Forwarded-Host") if trusted else None)
    return f"{origin}{BASE}{upload_id}"


def _expires(state_expires) -> str:
    return format_datetime(state_expires, usegmt=True)


@protocol
async def create(request: web.Request) -> web.StreamResponse:
    if request.body_exists and request.content_type == OFFSET_TYPE:
        # Creation-with-upload is an upload: its slot is taken before the upload is
        # made, so a 503 leaves nothing behind.
        refuse_content_coding(request.headers)
        with request.app[UPLOAD_SLOTS].take():
            return await _create(request)
    return await _create(request)


async def _create(request: web.Request) -> web.StreamResponse:
    method = h.method_of(request.method, request.headers.get("X-HTTP-Method-Override"))
    if method != "POST":
        raise BadRequest(f"{method} needs an upload URL")
    settings = request.app[SETTINGS]
    length = h.parse_number("Upload-Length", request.headers.get("Upload-Length"))
    deferred = h.parse_defer_length(request.headers.get("Upload-Defer-Length"))
    if (length is None) == (not deferred):
        raise BadRequest("send Upload-Length, or Upload-Defer-Length: 1")
    limit = upload_limit(request, settings.uploads.max_bytes)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Upload-Length exceeds {limit} bytes")
    if length == 0:
        raise EmptyFile()
    meta = h.parse_metadata(request.headers.get("Upload-Metadata"))
    message_id = parse_message_id(meta.get("message_id"))
    check_upload_message(request, message_id)
    # What completion will use, refused now rather than after the whole file came.
    options_from(meta)                                          # compress, quality: 400
    if "send_to" in meta:
        check_may_send(request)                                 # a token may not: 403
    check_upload_send(settings, _send_fields(meta))            # send_to: 400, or 503 when off
    store = tus_store(request)
    if not await store.media.message_exists(message_id):
        raise MessageNotFound()
    principal = request[PRINCIPAL]
    if principal.identity is None:   # only keys and tokens reach this route
        raise BadRequest("this credential cannot create uploads")
    if principal.key_id is not None:   # its upload counts now (server/hygiene/quotas.py)
        async with audited(request, "upload", message_id=message_id):
            await check_rate(store.media, principal.key_id)
            if length is not None:
                await check_room(store.media, principal.key_id, length)
    name = sanitize_filename(meta.get("filename") or "upload")
    upload_id = await store.create(
        message_id=message_id, creator=principal.name, creator_identity=principal.identity,
        upload_length=length, metadata=meta, original_name=name,
        expiry_seconds=settings.tus.expiry_seconds,
        max_open=settings.tus.max_open_per_client, max_bytes=_token_bytes(request))
    state = await store.get(upload_id)
    assert state is not None
    headers = {"Location": _location(request, upload_id),
               "Upload-Expires": _expires(state.expires_at)}
    if request.body_exists and request.content_type == OFFSET_TYPE:
        resp = await _patch(request, store, state, 0)   # creation-with-upload
        resp.set_status(201)
        if "Media-Id" in resp.headers:   # complete already: nothing left to expire
            del headers["Upload-Expires"]
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
    # Another key, or another token even for the same message, is told nothing about
    # the upload (404, as for an unknown one): its URL may have leaked, and a tus client
    # answered 404 simply starts a new upload of its own.
    identity = request[PRINCIPAL].identity
    if identity is None or identity != state.creator_identity:
        refused = TusUploadNotFound()
        await _audit_refusal(request, refused, state.message_id)
        raise refused
    if state.expired and not state.complete:
        raise UploadExpired("the upload expired")
    return state


async def _audit_refusal(request: web.Request, error: MediaError,
                         message_id: int | None) -> None:
    """The audit row of a refused tus request, as the plain upload writes for its
    refusals: action ``upload``, the error's code as outcome. A 404 is written only for
    another principal's upload (an unknown id is no refusal of anyone)."""
    await record(request, entry_for(request, "upload", message_id=message_id,
                                    outcome=error.code))


@contextlib.asynccontextmanager
async def _quota_audited(request: web.Request, message_id: int):
    """A PATCH refused for its key's quota is audited as a plain upload's refusal."""
    try:
        yield
    except QuotaExceeded as e:
        await _audit_refusal(request, e, message_id)
        raise


def _message_of(request: web.Request) -> int | None:
    """The message a creation names, if it names one that parses."""
    try:
        return parse_message_id(
            h.parse_metadata(request.headers.get("Upload-Metadata")).get("message_id"))
    except (MediaError, h.TusHeaderError):
        return None


def _media_headers(request: web.Request, rec) -> dict[str, str]:
    return {"Media-Id": str(rec.id), "Media-Url": request.app[SIGNER].media_url(rec.id)}


@protocol
async def head(request: web.Request) -> web.Response:
    return await _head(request)


async def _head(request: web.Request) -> web.Response:
    store = tus_store(request)
    state = await _state(request, store)
    headers = {"Cache-Control": "no-store"}
    if state.received:
        # Every byte is in but the media is not made yet: its completion is running
        # (423, ask again), or it was cut short by a dead instance and runs now.
        if state.held:
            raise TusLocked("the upload is being processed; ask again shortly",
                            headers={"Cache-Control": "no-store", "Retry-After": "1"})
        lock_id = await store.lock(state.id)
        try:
            state = await _fresh(request, store, state.id)
            if state.received:
                headers.update(await _complete(request, store, state, lock_id))
        finally:
            await store.unlock(state.id, lock_id)
    headers["Upload-Offset"] = str(state.offset)
    if not state.complete:
        headers["Upload-Expires"] = _expires(state.expires_at)
    if state.upload_length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(state.upload_length)
    if state.metadata:
        headers["Upload-Metadata"] = h.encode_metadata(state.metadata)
    if state.complete and "Media-Id" not in headers \
            and (rec := await store.record(state.id)) is not None:
        headers.update(_media_headers(request, rec))
    return web.Response(status=200, headers=headers)


async def _fresh(request: web.Request, store: TusStore, upload_id: uuid.UUID) -> TusState:
    """The state again once the lease is held: another request may have written, or
    completed, the upload between the first read and the lease."""
    state = await store.get(upload_id)
    if state is None:
        raise TusUploadNotFound()
    return state


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
    # A PATCH is an upload like any other (server/limits/uploads.py): refused before a
    # byte of its body is read.
    refuse_content_coding(request.headers)
    with request.app[UPLOAD_SLOTS].take():
        store = tus_store(request)
        state = await _state(request, store)
        return await _patch(request, store, state, offset)


async def _patch(request: web.Request, store: TusStore, state: TusState,
                 offset: int) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if state.complete or offset != state.offset:
        raise TusOffsetMismatch(headers={"Upload-Offset": str(state.offset)})
    length = state.upload_length
    declared = h.parse_number("Upload-Length", request.headers.get("Upload-Length"))
    limit = upload_limit(request, settings.uploads.max_bytes)
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
    if (key_id := request[PRINCIPAL].key_id) is not None:
        # What the upload will hold must fit what its key has left (counted for good
        # when it completes): refused before the body is read.
        async with _quota_audited(request, state.message_id):
            await check_room(store.media, key_id, length if length is not None
                             else offset + (request.content_length or 0))
    if checksum is not None and request.content_length is not None \
            and request.content_length > settings.tus.checksum_max_bytes:
        raise PayloadTooLarge(_checksum_limit(settings))
    lock_id = await store.lock(state.id)
    try:
        state = await _fresh(request, store, state.id)
        if state.complete or offset != state.offset:
            raise TusOffsetMismatch(headers={"Upload-Offset": str(state.offset)})
        if (max_bytes := _token_bytes(request)) is not None and state.upload_length is None:
            end = await _within_budget(request, store, state, lock_id, offset, end,
                                       max_bytes, declared=length is not None)
        writer = store.writer(state, lock_id, deferred=checksum is not None)
        async with _quota_audited(request, state.message_id):
            # The key's quota, as the bytes arrive: held for this PATCH only (the
            # completion counts the upload as any upload), with what came before it.
            meter = await QuotaMeter.open(request, offset)
            try:
                await _receive(request, writer, offset, end, checksum, settings, meter)
            finally:
                if meter is not None:
                    await asyncio.shield(meter.release())
        if length is not None and writer.offset == length:
            await writer.last()
            await writer.save(upload_length=length)
            state = await _fresh(request, store, state.id)   # with every chunk counted
            return web.Response(status=204, headers={
                "Upload-Offset": str(writer.offset),
                **await _complete(request, store, state, lock_id)})
        await writer.save(upload_length=length, release=True)
        return web.Response(status=204, headers={
            "Upload-Offset": str(writer.offset),
            "Upload-Expires": _expires(state.expires_at)})
    finally:
        await store.unlock(state.id, lock_id)


def _token_bytes(request: web.Request) -> int | None:
    """A token's max_bytes: what all its unfinished uploads may hold together."""
    principal = request[PRINCIPAL]
    return (principal.max_bytes or None) if principal.kind == "token" else None


async def _within_budget(request: web.Request, store: TusStore, state: TusState,
                         lock_id: uuid.UUID, offset: int, end: int, max_bytes: int, *,
                         declared: bool) -> int:
    """The end of a PATCH of a deferred-length upload, once its token's other
    unfinished uploads are counted. An Upload-Length declared now (``end``), or a
    Content-Length, beyond it: 413 before the body. A PATCH reserves no more than its
    Content-Length brings."""
    body = request.content_length
    want = end if declared or body is None else min(end, offset + body)
    allowed = await store.reserve(state, lock_id, max_bytes=max_bytes, end=want)
    if allowed < want and (declared or body is not None):
        raise PayloadTooLarge(f"this token's unfinished uploads may hold {max_bytes} "
                                  f"bytes together; this one may reach {allowed}")
    return allowed


def _checksum_limit(settings) -> str:
    return (f"a PATCH with Upload-Checksum may carry {settings.tus.checksum_max_bytes} "
            f"bytes (MEDIA_TUS_CHECKSUM_MAX_BYTES)")


async def _receive(request: web.Request, writer: Writer, offset: int, end: int, checksum,
                   settings, meter: QuotaMeter | None = None) -> None:
    """The body into the writer, a read at a time; past ``end`` is 413, past the key's
    quota (``meter``) too, keeping what fitted (413 quota_exceeded). With a checksum
    the writer stores the chunks past the offset and hashes as they come: a mismatch
    drops them (460, the offset stays). Without, a cut-off body keeps what came. A
    server shutting down stops the PATCH at its next read (503): the client resumes
    elsewhere from HEAD's offset."""
    limits = Limits(end, settings.uploads.idle_timeout)
    digest = hashlib.new(checksum[0]) if checksum is not None else None
    got = 0
    receiving = request.app[RECEIVING]
    receiving.add(request.content)
    try:
        while piece := await within(limits, request.content.read(READ_BYTES)):
            got += len(piece)
            if offset + got > end:
                raise PayloadTooLarge("the body goes past Upload-Length")
            if digest is not None:
                if got > settings.tus.checksum_max_bytes:
                    raise PayloadTooLarge(_checksum_limit(settings))
                digest.update(piece)
            if meter is not None and (fits := await meter.admit(len(piece))) < len(piece):
                await writer.write(piece[:fits])
                passed = QuotaExceeded("this key's quota is used up; the offset stays "
                                       "where the bytes that fitted end")
                passed.close_connection = True   # the rest of the body is not read
                raise passed
            await writer.write(piece)
    except BaseException as e:
        if not isinstance(e, TusLocked):   # else the lease, and the upload, are another's
            # Shielded: a cancelled handler (client gone) must still keep its bytes, or
            # drop a checksummed PATCH's.
            await asyncio.shield(_end_cut_off(writer))
        if not isinstance(e, (*BODY_ERRORS, _Stopping)):
            raise
        request.content.feed_eof()
        log.info("tus PATCH interrupted at %d: %s", writer.offset, e.__class__.__name__)
        if isinstance(e, _Stopping):
            stopping = ServiceUnavailable(
                "the server is shutting down; ask HEAD for the offset and resume")
            stopping.close_connection = True
            raise stopping from None
        raise UploadAborted() from None
    finally:
        receiving.discard(request.content)
    if digest is not None and digest.digest() != checksum[1]:
        await writer.discard()
        raise TusChecksumMismatch()


async def _end_cut_off(writer: Writer) -> None:
    """A PATCH that ends early: a plain one keeps what arrived (the lease goes with it),
    a checksummed one drops it (nothing can be verified). Best effort: the database may
    be what failed; a checksummed PATCH's leftovers are past the offset, where they are
    never read and are overwritten by the next PATCH."""
    try:
        if writer.deferred:
            await writer.discard()
        else:
            await writer.save(release=True)
    except Exception as e:
        log.warning("tus PATCH: could not settle a cut-off body: %s: %s",
                    e.__class__.__name__, e)


class _Stopping(Exception):
    """Set on the body of every PATCH in progress when the server begins to shut down."""


async def stop_receiving(app: web.Application) -> None:
    """on_shutdown: every PATCH still reading its body stops at its next read, keeps
    (or, checksummed, drops) what came, and answers 503; graceful shutdown then waits
    for that, not for the rest of a body that may be gigabytes."""
    for body in list(app[RECEIVING]):
        body.set_exception(_Stopping())


async def _complete(request: web.Request, store: TusStore, state: TusState,
                    lock_id: uuid.UUID) -> dict[str, str]:
    """Every byte is stored: the plain upload's pipeline makes the media (see the module
    text). Returns the headers that name it; a refused file removes the upload and
    raises the plain upload's error."""
    app = request.app
    settings = app[SETTINGS]
    meta = state.metadata
    limits = Limits(upload_limit(request, settings.uploads.max_bytes),
                    settings.uploads.idle_timeout)
    try:
        async with store.holding(state.id, lock_id), audited(request, "upload") as audit:
            audit.note(message_id=state.message_id)
            # A client gone meanwhile stops it (see the module text): CancelledError
            # passes the REFUSED check below, so the upload stays for the next HEAD.
            async with cancelled_when_gone(request):
                # The bytes are in the upload's content already: kept as they are,
                # they become the media's without being written again.
                stored = store.stored_bytes(state)
                job = await receive(store.media, store.reader(state, stored),
                                    meta.get("filename"), limits,
                                    app[PROCESSING], options_from(meta),
                                    guard_for(request, count_rate=False), stored)
                # finish removes the processed media itself if anything fails, adopt too.
                rec = await job.finish(state.message_id, audit=audit,
                                       then=store.adopt(state, lock_id))
    except MediaError as e:
        if e.status in REFUSED:
            # Shielded: a client gone meanwhile must not leave a refused file behind.
            await asyncio.shield(store.terminate(state.id, lock_id))
        raise
    app[METRICS].uploads.labels(rec.media_type).inc()
    app[METRICS].bytes_received.inc(rec.file_size)
    headers = _media_headers(request, rec)
    if (send := _checked_send(settings, meta)) is not None:
        delivery = await enqueue_send(request, rec.id, *send, None)
        headers["Delivery-Id"] = str(delivery["delivery_id"])
    return headers


def _send_fields(meta: dict[str, str]) -> dict[str, str]:
    return {k: meta[k].strip() for k in SEND_FIELDS if k in meta}


def _checked_send(settings, meta: dict[str, str]) -> tuple[str, str | None] | None:
    """The send asked for at creation, checked again: if sending was turned off since,
    the media is kept and the send skipped (logged), as the file itself is fine."""
    try:
        return check_upload_send(settings, _send_fields(meta))
    except MediaError as e:
        log.warning("tus upload: send_to skipped at completion: %s", e.message)
        return None


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
        if (await _fresh(request, store, state.id)).complete:
            raise TusUploadNotFound("the upload is complete; delete the media instead")
        await store.terminate(state.id, lock_id)
    finally:
        await store.unlock(state.id, lock_id)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    """What tus needs beside its routes (api/routes.py): Tus-Resumable on every answer,
    and the PATCHes being read stopped at shutdown."""
    app.on_response_prepare.append(_tus_resumable)
    app[RECEIVING] = set()
    app.on_shutdown.append(stop_receiving)


async def _tus_resumable(request: web.Request, response: web.StreamResponse) -> None:
    """Tus-Resumable on every tus answer but OPTIONS, the refusals of the access
    middleware (401, 403) included: they come before the handlers' own wrapper."""
    # raw_path: every response of the service passes here, and the decoded path costs.
    if request.raw_path.startswith(BASE) and request.method != "OPTIONS" \
            and "Tus-Resumable" not in response.headers:
        response.headers["Tus-Resumable"] = h.VERSION
