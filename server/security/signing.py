"""Signed media URLs and upload tokens: pure functions over HMAC-SHA256.

A signed URL is ``/api/media/serve/{id}?[variant=v&]exp=<unix seconds>&sig=<mac>``;
the MAC covers the media id, the variant ('' for the original) and exp, so changing any
of them breaks it. A thumbnail's URL carries its whole request (``variant=thumbnail&
width=W&height=H&method=M[&animated=true]``), and the MAC covers all of it, in the one
spelling of server/http/thumbnails.py: a URL for a 32x32 square is not one for 800x600.
An upload token is ``mut.<message id>.<max bytes>.<exp>.<key id>.<mac>`` (the key that
issued it, whose quota its uploads count against; tokens made before quotas have no key
id and count against no key): everything needed to check it travels with it, so no
table is read. Both are signed
with the first key and verified against every key, so keys rotate without breaking
what is already handed out. Each MAC starts with its purpose, so a URL's signature can
never pass as a token's.

Everything a client sends is checked for shape before any work (digits of bounded
length, a MAC of exactly 43 base64url characters) and compared in constant time.
"""
from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote

from server.http.thumbnails import ThumbnailRequest

MAC_CHARS = 43                         # base64url of 32 bytes, unpadded
_MAC = re.compile(r"[A-Za-z0-9_-]{43}")
# Canonical digits only (no leading zeros): one value, one spelling, one signature.
_UINT = re.compile(r"0|[1-9][0-9]{0,18}")
# A variant's name, or a thumbnail request's signed text (thumbnail:96x96:crop:animated).
_VARIANT = re.compile(r"[a-z0-9_:-]{0,48}")
TOKEN_PREFIX = "mut."
MAX_INT = 2**63 - 1


class Check(enum.Enum):
    OK = "ok"
    EXPIRED = "expired"
    INVALID = "invalid"


def _mac(key: bytes, *fields: object) -> str:
    message = "\n".join(str(f) for f in fields).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _same(a: str, b: str) -> bool:
    # Both ASCII by construction (checked against _MAC first).
    return hmac.compare_digest(a.encode(), b.encode())


def _uint(text: str | None) -> int | None:
    if text is None or not _UINT.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_INT else None


# -- media URLs ----------------------------------------------------------------------

def expiry(now: float, ttl: int) -> int:
    """When a URL made at ``now`` expires: at least ``ttl`` seconds away, rounded up to a
    window of a tenth of ``ttl``, so URLs made within one window are identical (caches
    keep hitting) and none lives longer than 1.1 x ttl."""
    window = max(1, ttl // 10)
    return -(-(int(now) + ttl) // window) * window


def sign_media(key: bytes, media_id: int, variant: str, exp: int) -> str:
    return _mac(key, "media", media_id, variant, exp)


def media_query(key: bytes, media_id: int, variant: str | None, exp: int) -> str:
    """The query string of a signed URL (no leading ``?``)."""
    head = f"variant={quote(variant)}&" if variant else ""
    return f"{head}exp={exp}&sig={sign_media(key, media_id, variant or '', exp)}"


def thumbnail_query(key: bytes, media_id: int, req: ThumbnailRequest, exp: int) -> str:
    """The query string of a thumbnail's signed URL (no leading ``?``)."""
    return f"{req.query()}&exp={exp}&sig={sign_media(key, media_id, req.signed_text(), exp)}"


def verify_media(keys: Sequence[bytes], media_id: int, variant: str | None,
                 exp: str | None, sig: str | None, now: float) -> Check:
    """Whether ``exp`` and ``sig`` (as sent) grant reading ``media_id``'s ``variant``
    (for a thumbnail: its signed text, http.thumbnails.signed_variant of the query).

    A bad signature is INVALID whatever exp says; a good one past exp is EXPIRED."""
    exp_value = _uint(exp)
    variant = variant or ""
    if exp_value is None or sig is None or not _MAC.fullmatch(sig) \
            or not _VARIANT.fullmatch(variant):
        return Check.INVALID
    if not _signed(tuple(keys), media_id, variant, exp_value, sig):
        return Check.INVALID
    return Check.OK if exp_value > now else Check.EXPIRED


@functools.lru_cache(maxsize=8192)
def _signed(keys: tuple[bytes, ...], media_id: int, variant: str, exp: int,
            sig: str) -> bool:
    # A signed URL is fetched again and again (a chat's photo by each member, a
    # player's ranges, a CDN's revalidations): the answer is remembered rather than
    # the HMACs computed anew each time (a twentieth of a small GET's time). Expiry is
    # still checked against the clock on every request, by the caller.
    return any(_same(sign_media(k, media_id, variant, exp), sig) for k in keys)


def serve_path(media_id: int) -> str:
    """The path a media's bytes are served at, unsigned (the URL the signature covers)."""
    return f"/api/media/serve/{media_id}"


class UrlSigner:
    """Makes the ``url`` of media JSON: signed, or the plain path in public mode."""

    def __init__(self, keys: Sequence[bytes], ttl: int, *, public: bool = False,
                 clock: Callable[[], float] = time.time,
                 thumbnail_sizes: Sequence[tuple[int, int, str]] = ()):
        if not keys:
            raise ValueError("at least one signing key is needed")
        self.keys = tuple(keys)
        self.ttl = ttl
        self.public = public
        self.clock = clock
        # MEDIA_THUMBNAIL_SIZES: the thumbnails media JSON lists, each with its URL.
        self.thumbnail_sizes = tuple(thumbnail_sizes)

    def media_url(self, media_id: int, variant: str | None = None) -> str:
        """The URL a client reads ``media_id`` (optionally a variant of it) from."""
        path = serve_path(media_id)
        if self.public:
            return f"{path}?variant={quote(variant)}" if variant else path
        exp = expiry(self.clock(), self.ttl)
        return f"{path}?{media_query(self.keys[0], media_id, variant, exp)}"

    def thumbnail_url(self, media_id: int, req: ThumbnailRequest) -> str:
        """The URL a client reads one thumbnail of ``media_id`` from."""
        path = serve_path(media_id)
        if self.public:
            return f"{path}?{req.query()}"
        exp = expiry(self.clock(), self.ttl)
        return f"{path}?{thumbnail_query(self.keys[0], media_id, req, exp)}"

    def verify(self, media_id: int, variant: str | None, exp: str | None,
               sig: str | None) -> Check:
        return verify_media(self.keys, media_id, variant, exp, sig, self.clock())

    def upload_token(self, message_id: int, max_bytes: int, ttl: int,
                     key_id: int | None = None) -> tuple[str, int]:
        """A token for uploading to ``message_id`` issued by key ``key_id``, and when
        it expires."""
        exp = int(self.clock()) + ttl
        return make_upload_token(self.keys[0], message_id, max_bytes, exp, key_id), exp

    def check_upload_token(self, token: str) -> UploadGrant | Check:
        return verify_upload_token(self.keys, token, self.clock())


# -- upload tokens -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class UploadGrant:
    message_id: int
    max_bytes: int
    exp: int
    key_id: int | None = None   # the key that issued it (its quota)


def make_upload_token(key: bytes, message_id: int, max_bytes: int, exp: int,
                      key_id: int | None = None) -> str:
    if key_id is None:
        mac = _mac(key, "upload", message_id, max_bytes, exp)
        return f"{TOKEN_PREFIX}{message_id}.{max_bytes}.{exp}.{mac}"
    # Its own purpose word: a key id can never be cut off to pass as an older token.
    mac = _mac(key, "upload-by-key", message_id, max_bytes, exp, key_id)
    return f"{TOKEN_PREFIX}{message_id}.{max_bytes}.{exp}.{key_id}.{mac}"


def token_identity(token: str) -> str:
    """One token's own identity: a digest of the whole token (its MAC makes it unique to
    the grant and the signing key), never the token itself, so it may be stored."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:40]


def is_upload_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX)


def verify_upload_token(keys: Sequence[bytes], token: str,
                        now: float) -> UploadGrant | Check:
    """The grant a token carries, or INVALID (malformed, tampered) or EXPIRED."""
    if not is_upload_token(token) or len(token) > 120:
        return Check.INVALID
    fields = token[len(TOKEN_PREFIX):].split(".")
    if len(fields) not in (4, 5):
        return Check.INVALID
    message_id, max_bytes, exp = (_uint(f) for f in fields[:3])
    key_id = _uint(fields[3]) if len(fields) == 5 else None
    mac = fields[-1]
    if message_id is None or max_bytes is None or exp is None or not _MAC.fullmatch(mac) \
            or (len(fields) == 5 and key_id is None):
        return Check.INVALID
    signed = (("upload", message_id, max_bytes, exp) if key_id is None
              else ("upload-by-key", message_id, max_bytes, exp, key_id))
    if not any(_same(_mac(k, *signed), mac) for k in keys):
        return Check.INVALID
    if exp <= now:
        return Check.EXPIRED
    return UploadGrant(message_id, max_bytes, exp, key_id)
