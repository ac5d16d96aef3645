"""How media is served safely: inline or as an attachment, and how long it is cached.

Only types a browser displays without running anything are inline (images other than
SVG, audio, video, PDF). Everything else, including every unknown type, is an
attachment under ``Content-Security-Policy: sandbox``: even opened directly, it cannot
run script in this origin.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from server.http.disposition import content_disposition, is_unsafe_inline

PUBLIC_CACHE = "public, max-age=31536000, immutable"   # the original one-year cache
SANDBOX = "sandbox"


def inline_allowed(mime_type: str) -> bool:
    essence = mime_type.split(";", 1)[0].strip().lower()
    if is_unsafe_inline(essence):
        return False
    return essence.startswith(("image/", "audio/", "video/")) or essence == "application/pdf"


@functools.lru_cache(maxsize=4096)
def safety_headers(mime_type: str, file_name: str) -> Mapping[str, str]:
    """Content-Disposition, nosniff, and the sandbox for what is not shown inline.

    Remembered for the files served most (a twentieth of a small GET went into
    sanitising and encoding the same name again); read-only, as it is shared."""
    inline = inline_allowed(mime_type)
    headers = {"Content-Disposition": content_disposition(file_name, inline=inline),
               "X-Content-Type-Options": "nosniff"}
    if not inline:
        headers["Content-Security-Policy"] = SANDBOX
    return MappingProxyType(headers)


def cache_control(kind: str, *, expires: int | None, now: float, ttl: int) -> str:
    """Cache-Control for media read as ``kind`` (a Principal's kind).

    Public reads keep the one-year immutable cache. A signed URL may be kept by the
    reader's own cache (never a shared one) until it expires; a read with a key, for
    one URL lifetime."""
    if kind == "public":
        return PUBLIC_CACHE
    if kind == "signed-url" and expires is not None:
        return f"private, max-age={max(0, int(expires - now))}"
    return f"private, max-age={ttl}"
