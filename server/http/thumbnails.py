"""The thumbnail request: ``?variant=thumbnail&width=W&height=H&method=crop|scale
[&animated=true]`` read into one value, and the canonical text a signed URL's
signature covers (security/signing.py). Pure: the route and the signature check read
the query the same way, so what is signed is exactly what is served.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

THUMBNAIL = "thumbnail"
METHODS = ("crop", "scale")
MAX_EDGE = 9999
# Canonical digits only: one request, one spelling, one signature and one cache entry.
_EDGE = re.compile(r"[1-9][0-9]{0,3}")
_FLAGS = {"true": True, "false": False}


@dataclasses.dataclass(frozen=True)
class ThumbnailRequest:
    width: int
    height: int
    method: str           # crop | scale
    animated: bool = False

    def signed_text(self) -> str:
        """What a signature covers: every parameter, in one canonical spelling."""
        tail = ":animated" if self.animated else ""
        return f"{THUMBNAIL}:{self.width}x{self.height}:{self.method}{tail}"

    def query(self) -> str:
        """The query parameters of this request (no leading ``?``, no signature)."""
        tail = "&animated=true" if self.animated else ""
        return (f"variant={THUMBNAIL}&width={self.width}&height={self.height}"
                f"&method={self.method}{tail}")


def parse_thumbnail(query: Mapping[str, str]) -> ThumbnailRequest | str:
    """The thumbnail ``query`` asks for, or a message saying what is wrong with it."""
    width, height = query.get("width"), query.get("height")
    if width is None or height is None or not _EDGE.fullmatch(width) \
            or not _EDGE.fullmatch(height):
        return f"width and height must be integers from 1 to {MAX_EDGE}"
    method = query.get("method", "scale")
    if method not in METHODS:
        return "method must be crop or scale"
    animated = _FLAGS.get(query.get("animated", "false"))
    if animated is None:
        return "animated must be true or false"
    return ThumbnailRequest(int(width), int(height), method, animated)


def signed_variant(query: Mapping[str, str]) -> str | None:
    """What a signature over ``query`` must cover beside the media id and expiry: ''
    for the original, the variant's name, or a thumbnail request's signed_text; None
    when the thumbnail parameters are malformed (no signature can match them)."""
    variant = query.get("variant") or ""
    if variant != THUMBNAIL:
        return variant
    req = parse_thumbnail(query)
    return req.signed_text() if isinstance(req, ThumbnailRequest) else None
