"""POST /api/media/upload-production: stream an upload into the media store.

Two forms, one path through the store:
- multipart/form-data with fields ``message_id`` and ``file``, in any order;
- a raw body (mobile clients): the bytes, their type in Content-Type, the message id in
  ``?message_id=`` or ``X-Message-Id``, the name in ``?filename=``, ``X-File-Name``
  (percent-encoded UTF-8) or a Content-Disposition header. Chunked bodies are fine.

The body is never held whole: it is read in pieces, sniffed from its first bytes,
encoded and stored chunk by chunk, and counted against MEDIA_MAX_UPLOAD_BYTES as it
arrives (413 the moment the limit is crossed). Any failure leaves nothing visible.
"""
from __future__ import annotations

import logging
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
# aiohttp's own handler for Expect (100 Continue on HTTP/1.1), which a route given its
# own expect_handler no longer calls. Private (there since aiohttp 2; tested on 3.14):
# the Expect tests in tests/process/test_upload_http.py fail if it changes.
from aiohttp.web_urldispatcher import _default_expect_handler

from server.api.deliveries import check_upload_send, enqueue_send
from server.api.media_json import media_json, media_path
from server.errors import (
    BadRequest,
    ExpectationFailed,
    InvalidMessageId,
    MessageNotFound,
    MissingFile,
    MissingMessageId,
    PayloadTooLarge,
    TooManyUploads,
    UnsupportedContentEncoding,
    UnsupportedRequestType,
    UploadAborted,
    UploadTimeout,
    render,
)
from server.http.form_names import header_filename
from server.http.media_types import is_raw_upload_type
from server.http.params import parse_id
from server.hygiene.guard import guard_for
from server.ingest.receive import BODY_ERRORS, Limits, Reader, receive, within
from server.runtime.disconnect import cancelled_when_gone
from server.limits.uploads import has_content_coding, refuse_content_coding, upload_pace
from server.limits.uploads import UPLOAD_SLOTS
from server.observability.metrics import METRICS
from server.processing.pipeline import PROCESSING, Job
from server.processing.policy import options_from
from server.security import SIGNER
from server.security.audit import Audit, audited
from server.security.hooks import (
    check_may_send,
    check_upload_message,
    refuse_before_body,
    upload_limit,
)
from server.settings import SETTINGS
from server.store.media import STORE, MediaRecord, MediaStore, Upload

log = logging.getLogger(__name__)

READ_BYTES = 64 * 1024   # per read of the body: a small multiple of aiohttp's own 64 KiB buffer
MULTIPART_OVERHEAD = 1024 * 1024   # slack for boundaries and small fields in Content-Length
SMALL_FIELD_BYTES = 1024           # message_id and any extra text field
MAX_PARTS = 16
SEND_FIELDS = ("send_to", "caption")


def parse_message_id(text: str | None) -> int:
    if text is None or text.strip() == "":
        raise MissingMessageId()
    value = parse_id(text.strip())   # form fields often carry a stray newline
    if value is None:
        raise InvalidMessageId()
    return value


def raw_file_name(request: web.Request) -> str | None:
    name = request.query.get("filename") or request.headers.get("X-File-Name")
    if name:
        return unquote(name, errors="replace")
    return header_filename(request.headers.get("Content-Disposition"))


async def upload_media(request: web.Request) -> web.Response:
    # Both refusals come before a byte of the body is read (server/limits/uploads.py).
    refuse_content_coding(request.headers)
    with request.app[UPLOAD_SLOTS].take():
        return await _upload(request)


async def _upload(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    store = request.app[STORE]
    # An upload token may allow less than the service does.
    limits = Limits(upload_limit(request, settings.uploads.max_bytes),
                    settings.uploads.idle_timeout, upload_pace(settings))
    length = request.content_length
    ctype = request.content_type
    # A send to WhatsApp asked for with the upload (send_to, caption): checked before
    # the file is kept, queued once it is (server/api/deliveries.py).
    send: dict[str, str] = {}
    try:
        async with audited(request, "upload") as audit:
            if ctype == "multipart/form-data":
                if length is not None and length > limits.max_bytes + MULTIPART_OVERHEAD:
                    raise PayloadTooLarge()
                rec = await _multipart(request, store, limits, audit, send)
            elif is_raw_upload_type(ctype):
                if length is not None and length > limits.max_bytes:
                    raise PayloadTooLarge()
                send.update((k, v) for k, v in request.query.items() if k in SEND_FIELDS)
                if "send_to" in send:
                    check_may_send(request)   # before a byte of the body is read
                check_upload_send(settings, send)
                rec = await _raw(request, store, limits, audit)
            else:
                raise UnsupportedRequestType()
    except (UploadTimeout, *BODY_ERRORS) as e:
        # The body is broken, gone or stalled, wherever in it that happened: there is
        # nothing left worth reading, and aiohttp's lingering read of the rest would
        # only raise (and log) again.
        request.content.feed_eof()
        if isinstance(e, UploadTimeout):
            raise
        log.info("upload interrupted: %s", e.__class__.__name__)
        raise UploadAborted() from None
    request.app[METRICS].uploads.labels(rec.media_type).inc()
    request.app[METRICS].bytes_received.inc(rec.file_size)
    body = media_json(rec, request.app[SIGNER])
    if checked := check_upload_send(settings, send):
        body["delivery"] = await enqueue_send(request, rec.id, *checked, None)
    return web.json_response(body, status=201, headers={"Location": media_path(rec.id)})


async def _raw(request: web.Request, store: MediaStore, limits: Limits,
               audit: Audit) -> MediaRecord:
    message_id = parse_message_id(request.query.get("message_id")
                                  or request.headers.get("X-Message-Id"))
    _bind_message(request, audit, message_id)
    await _check_message(store, message_id)
    upload = await receive(store, lambda: request.content.read(READ_BYTES),
                           raw_file_name(request), limits, request.app[PROCESSING],
                           options_from(request.query), guard_for(request))
    return await _finish(request, upload, message_id, audit)


def _bind_message(request: web.Request, audit: Audit, message_id: int) -> None:
    audit.note(message_id=message_id)
    check_upload_message(request, message_id)   # a token uploads to its message only


async def _multipart(request: web.Request, store: MediaStore, limits: Limits,
                     audit: Audit, send: dict[str, str]) -> MediaRecord:
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):
        raise BadRequest("malformed multipart body") from None
    message_id: int | None = None
    upload: Upload | Job | None = None
    options = options_from(request.query)
    try:
        for _ in range(MAX_PARTS):
            part = await _next_part(reader, limits)
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                raise BadRequest("nested multipart bodies are not accepted")
            if part.name == "file":
                if upload is not None:
                    raise BadRequest("one file per request")
                name = header_filename(part.headers.get("Content-Disposition"))
                upload = await receive(store, _chunk_reader(part, READ_BYTES), name, limits,
                                       request.app[PROCESSING], options, guard_for(request))
            elif part.name == "message_id":
                message_id = parse_message_id(await _small_field(part, limits))
                _bind_message(request, audit, message_id)
                if upload is None:
                    await _check_message(store, message_id)
            elif part.name in SEND_FIELDS:
                if part.name == "send_to":
                    # Refused as soon as it is seen; a file that came before it is
                    # aborted below, nothing of it kept.
                    check_may_send(request)
                send[part.name] = (await _small_field(part, limits)).strip()
            else:   # compress / quality apply until the file is finished; others ignored
                options = options.with_field(part.name, await _small_field(part, limits))
                if isinstance(upload, Job):
                    upload.options = options
        else:
            raise BadRequest(f"more than {MAX_PARTS} form fields")
    except BaseException:
        if upload is not None:
            await upload.abort()
        raise
    if upload is None:
        raise MissingFile()
    if message_id is None:
        await upload.abort()
        raise MissingMessageId()
    try:
        check_upload_send(request.app[SETTINGS], send)
    except BaseException:
        await upload.abort()
        raise
    # When the file came first, its message is checked here, by the foreign key.
    return await _finish(request, upload, message_id, audit)


async def _finish(request: web.Request, upload: Upload | Job, message_id: int,
                  audit: Audit) -> MediaRecord:
    try:
        # Processing for a client that went away stops (server/runtime/disconnect.py).
        async with cancelled_when_gone(request):
            return await upload.finish(message_id, audit=audit)
    except BaseException:
        await upload.abort()
        raise


def _chunk_reader(part: aiohttp.BodyPartReader, size: int) -> Reader:
    async def read() -> bytes:
        try:
            return await part.read_chunk(size)
        except ValueError:   # the body ended inside the part: no closing boundary
            raise BadRequest("malformed multipart body: truncated part") from None
    return read


async def _next_part(reader: aiohttp.MultipartReader, limits: Limits):
    try:
        return await within(limits, reader.next())
    except (ValueError, HttpProcessingError) as e:
        # Bad boundary, control characters in part headers, a truncated body...
        raise BadRequest(f"malformed multipart body: {e.__class__.__name__}") from None


async def _small_field(part: aiohttp.BodyPartReader, limits: Limits) -> str:
    read = _chunk_reader(part, SMALL_FIELD_BYTES)
    data = bytearray()
    while chunk := await within(limits, read()):
        data += chunk
        if len(data) > SMALL_FIELD_BYTES:
            raise BadRequest(f"form field {part.name!r} is too long")
    return data.decode("utf-8", errors="replace")


async def _check_message(store: MediaStore, message_id: int) -> None:
    # Fail before reading a byte of the body when the message is unknown.
    if not await store.message_exists(message_id):
        raise MessageNotFound()


async def expect_continue(request: web.Request) -> web.Response | None:
    """The route's expect handler (it runs before the handler, outside the middlewares).

    A body announced too big is refused with 413 before the client sends it; an
    expectation other than 100-continue gets 417 (RFC 9110 §10.1.1); otherwise aiohttp's
    own handler sends the interim 100 Continue.
    """
    if request.headers.get("Expect", "").strip().lower() != "100-continue":
        return render(ExpectationFailed())
    settings = request.app[SETTINGS]
    if (refused := refuse_before_body(request)) is not None:
        return refused
    length = request.content_length
    if length is not None and length > settings.uploads.max_bytes + MULTIPART_OVERHEAD:
        return render(PayloadTooLarge())
    # Told before the client sends its body (server/limits/uploads.py).
    if has_content_coding(request.headers):
        return render(UnsupportedContentEncoding())
    if request.app[UPLOAD_SLOTS].full:
        return render(TooManyUploads())
    await _default_expect_handler(request)
    return None
