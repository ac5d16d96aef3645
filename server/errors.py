"""Domain errors, their HTTP statuses, and the one middleware that renders them.

Every failure a client can cause is a MediaError with a stable code; the storage layer
translates database failures into these at its boundary. Anything else reaching the
middleware is a bug: it is logged with its stack and becomes the only kind of 500.
"""
from __future__ import annotations

import logging

from aiohttp import web

from server.observability.paths import safe_path

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class MediaError(Exception):
    status = 500
    code = "internal_error"
    default_message = "internal error"
    # The request body was left unread or broken: answer, then close the connection
    # rather than reuse it.
    close_connection = False

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.headers = headers or {}
        # Fields of the JSON body beside error and message (an infection's signature).
        self.fields: dict[str, object] = {}


def _error(name: str, status: int, code: str, message: str, *,
           close: bool = False) -> type[MediaError]:
    return type(name, (MediaError,), {"status": status, "code": code,
                                      "default_message": message, "close_connection": close})


# One block, like tusd's: the code a client can switch on, its status, its default text.
BadRequest = _error("BadRequest", 400, "bad_request", "bad request")
# A JSON body that does not parse (nor does one nested thousands deep).
InvalidJson = _error("InvalidJson", 400, "invalid_json", "the body must be JSON")
EmptyFile = _error("EmptyFile", 400, "empty_file", "the file is empty")
MissingFile = _error("MissingFile", 400, "missing_file", "no file in the request")
MissingMessageId = _error("MissingMessageId", 400, "missing_message_id", "message_id is required")
InvalidMessageId = _error("InvalidMessageId", 400, "invalid_message_id",
                          "message_id must be an integer between 1 and 2147483647")
MediaNotFound = _error("MediaNotFound", 404, "media_not_found", "media not found")
# Thumbnails are made of images and videos only.
NoThumbnail = _error("NoThumbnail", 404, "no_thumbnail", "this media has no thumbnails")
MessageNotFound = _error("MessageNotFound", 404, "message_not_found", "message not found")
# An upload idle past MEDIA_UPLOAD_STALE_SECONDS was reclaimed by the janitor while its
# client was still sending; 410 as tus's expiration extension answers an expired upload.
UploadExpired = _error("UploadExpired", 410, "upload_expired",
                       "the upload sat idle too long and was removed; send it again",
                       close=True)
PreconditionFailed = _error("PreconditionFailed", 412, "precondition_failed",
                            "a precondition did not hold")
PayloadTooLarge = _error("PayloadTooLarge", 413, "payload_too_large", "the file is too large",
                         close=True)
UnsupportedMediaType = _error("UnsupportedMediaType", 415, "unsupported_media_type",
                              "this type of file is not accepted")
# Carries Content-Range: bytes */<length> (RFC 9110 §15.5.17), given where it is raised.
RangeNotSatisfiable = _error("RangeNotSatisfiable", 416, "range_not_satisfiable",
                             "no requested range overlaps the file")
# An Expect other than 100-continue (RFC 9110 §10.1.1).
ExpectationFailed = _error("ExpectationFailed", 417, "expectation_failed",
                           "the only expectation understood is 100-continue", close=True)
UnsupportedRequestType = _error("UnsupportedRequestType", 415, "unsupported_request_type",
                                "send multipart/form-data or the raw bytes with their type")
UploadTimeout = _error("UploadTimeout", 408, "upload_timeout",
                       "the client sent nothing for too long; the upload was dropped",
                       close=True)
UploadAborted = _error("UploadAborted", 400, "upload_aborted",
                       "the upload was interrupted or its body could not be read", close=True)
# Media processing: the bytes are not what their type says, or would cost too much to
# decode (server/processing).
InvalidMedia = _error("InvalidMedia", 422, "invalid_media",
                      "the file is damaged, truncated or not what its type says")
MediaTooComplex = _error("MediaTooComplex", 422, "media_too_complex",
                         "the file would decode to more than the server allows")
# Access control (server/security). 401: no usable credential (the response carries
# WWW-Authenticate); 403: a credential that does not allow this.
Unauthorized = _error("Unauthorized", 401, "unauthorized",
                      "an API key is required: Authorization: Bearer <key>")
InvalidCredentials = _error("InvalidCredentials", 401, "invalid_credentials",
                            "the API key or token is not valid")
TokenExpired = _error("TokenExpired", 401, "token_expired", "the upload token has expired")
Forbidden = _error("Forbidden", 403, "forbidden", "this key's scope does not allow this")
TokenNotAllowed = _error("TokenNotAllowed", 403, "token_not_allowed",
                         "an upload token only uploads")
# ?token= is for upload tokens only: a key in a URL ends up in proxy and browser logs.
KeyInQuery = _error("KeyInQuery", 401, "key_in_query",
                    "API keys go in the Authorization header, never in the URL; "
                    "?token= takes upload tokens only", close=True)
TokenWrongMessage = _error("TokenWrongMessage", 403, "token_wrong_message",
                           "the upload token is for another message")
InvalidSignature = _error("InvalidSignature", 403, "invalid_signature",
                          "the link's signature is not valid")
LinkExpired = _error("LinkExpired", 403, "link_expired", "the link has expired")
AddressNotAllowed = _error("AddressNotAllowed", 403, "address_not_allowed",
                           "not allowed from this address")
CorsRefused = _error("CorsRefused", 403, "cors_refused",
                     "this origin or method is not allowed")
# Retention removed the media (server/store/purge.py); its message remains. 410, not
# 404: the id was real, and a client may say "expired" rather than "broken link".
MediaPurged = _error("MediaPurged", 410, "media_purged",
                     "this media was removed by the retention policy; its message remains")
LegacyGone = _error("LegacyGone", 410, "legacy_url_gone",
                    "the old /uploads/media URLs were retired; ask for the media's new URL")
# Resumable uploads (server/tus), statuses as tus 1.0 gives them.
TusUploadNotFound = _error("TusUploadNotFound", 404, "upload_not_found",
                           "no such resumable upload (finished with, terminated or expired)")
TusOffsetMismatch = _error("TusOffsetMismatch", 409, "offset_mismatch",
                           "Upload-Offset is not the upload's current offset", close=True)
TusLocked = _error("TusLocked", 423, "upload_locked",
                   "another request is writing to this upload; retry shortly", close=True)
TusTooManyOpen = _error("TusTooManyOpen", 429, "too_many_open_uploads",
                        "this key or token has too many unfinished uploads; finish or "
                        "terminate one first")
TusChecksumMismatch = _error("TusChecksumMismatch", 460, "checksum_mismatch",
                             "the body does not match Upload-Checksum; it was discarded")
ServiceUnavailable = _error("ServiceUnavailable", 503, "unavailable",
                            "the service cannot reach its database")
# import-url (server/ingest/url.py)
UrlNotAllowed = _error("UrlNotAllowed", 400, "url_not_allowed",
                       "this URL may not be fetched by the server")
ImportFailed = _error("ImportFailed", 502, "import_failed", "the URL could not be fetched")
ImportTimeout = _error("ImportTimeout", 504, "import_timeout",
                       "the URL's server took too long")
# Z-API sends and webhooks (server/zapi/)
ZapiDisabled = _error("ZapiDisabled", 503, "zapi_disabled",
                      "sending to WhatsApp is off: ZAPI_INSTANCE_ID, ZAPI_TOKEN and "
                      "ZAPI_CLIENT_TOKEN are not configured")
InvalidPhone = _error("InvalidPhone", 400, "invalid_phone",
                      "phone must be 10 to 15 digits with the country code, or a group "
                      "id ending in -group")
DeliveryNotFound = _error("DeliveryNotFound", 404, "delivery_not_found",
                          "delivery not found")
# Limits against abuse (server/limits; a listing's page, server/http/paging.py).
UnsupportedContentEncoding = _error(
    "UnsupportedContentEncoding", 415, "unsupported_content_encoding",
    "send the file as it is, without a Content-Encoding", close=True)
TooManyUploads = _error("TooManyUploads", 503, "too_many_uploads",
                        "too many uploads in progress; retry later", close=True)
UploadTooSlow = type("UploadTooSlow", (UploadTimeout,), {
    "code": "upload_too_slow",
    "default_message": "the upload was slower than the minimum rate; it was dropped"})
InvalidLimit = _error("InvalidLimit", 400, "invalid_limit",
                      "limit must be an integer between 1 and 1000")
InvalidCursor = _error("InvalidCursor", 400, "invalid_cursor",
                       "cursor must be the next_cursor of a previous page, unchanged")
# Storage hygiene (server/hygiene): quotas and rates per key, virus scanning, quarantine.
QuotaExceeded = _error("QuotaExceeded", 413, "quota_exceeded",
                       "this key's storage quota is used up; nothing was kept", close=True)
RateLimited = _error("RateLimited", 429, "rate_limited",
                     "this key started too many uploads this minute; see Retry-After",
                     close=True)
Infected = _error("Infected", 422, "infected",
                  "the virus scanner found malware in the file; nothing was kept")
ScanUnavailable = _error("ScanUnavailable", 503, "scan_unavailable",
                         "the virus scanner cannot be reached; nothing was kept, retry later",
                         close=True)
QuarantinedContent = _error("QuarantinedContent", 422, "quarantined_content",
                            "this content is quarantined and cannot be uploaded")
# Quarantined content is kept for review: only an admin may delete media showing it.
QuarantineHold = _error("QuarantineHold", 409, "quarantine_hold",
                        "this media's content is quarantined and kept for review; only "
                        "an admin may delete it")
NotQuarantined = _error("NotQuarantined", 404, "not_quarantined",
                        "this media's content is not quarantined")
# RFC 7725: the content is withheld (quarantined by an administrator).
MediaQuarantined = _error("MediaQuarantined", 451, "media_quarantined",
                          "this media is quarantined and is not served")


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None,
                   fields: dict[str, object] | None = None) -> web.Response:
    """JSON error body, never stored by a cache: the media's one-year lifetime must not
    stick to an error (RFC 9111 §5.2.2.5)."""
    resp = web.json_response({"error": code, "message": message, **(fields or {})},
                             status=status, headers=headers)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def render(e: MediaError) -> web.Response:
    """The response for a domain error; also for code that runs outside the middleware
    (aiohttp's expect handlers)."""
    headers = e.headers
    if e.status == 503 and "Retry-After" not in headers:
        # A 503 says when to come back (RFC 9110 §15.6.4): the database is back within
        # seconds of a restart or a failover, or an upload slot frees up.
        headers = {**headers, "Retry-After": str(RETRY_AFTER_SECONDS)}
    resp = error_response(e.status, e.code, e.message, headers, e.fields)
    if e.close_connection:
        resp.force_close()
    return resp


# aiohttp's own HTTP errors (404 for an unknown route, 405, its 413) get the JSON shape too.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type"}


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except MediaError as e:
        return render(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "location")}
        return error_response(e.status, code, e.reason, headers)
    except ConnectionError:
        # The client went away mid-request: normal on mobile networks, nobody to answer.
        log.debug("client went away during %s %s", request.method, safe_path(request))
        raise
    except Exception:
        # The path as every log shows it: a secret in it is its route template.
        log.exception("unhandled error on %s %s", request.method, safe_path(request))
        return error_response(500, "internal_error", "internal error")
