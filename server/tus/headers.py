"""Pure parsing of tus request headers. Each function returns a value or raises
TusHeaderError with a message a client can act on (the handler answers 400)."""
from __future__ import annotations

import base64
import binascii
import re

VERSION = "1.0.0"
EXTENSIONS = ("creation,creation-with-upload,creation-defer-length,termination,"
              "checksum,expiration")
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
# A tus length or offset is a non-negative integer; 2**53 keeps it exact in any JSON
# client and far above any upload this service accepts.
MAX_NUMBER = 2 ** 53
MAX_METADATA_PAIRS = 32
MAX_METADATA_HEADER = 8192
_DIGITS = re.compile(r"[0-9]{1,16}")
_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
# A forwarded host: a name or IPv4 address, or a bracketed IPv6 one, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
                   r"(?::[0-9]{1,5})?")


class TusHeaderError(ValueError):
    """A malformed tus header (400)."""


def parse_number(name: str, text: str | None) -> int | None:
    """Upload-Offset / Upload-Length: None when absent, else a non-negative integer."""
    if text is None:
        return None
    text = text.strip()
    if not _DIGITS.fullmatch(text) or int(text) > MAX_NUMBER:
        raise TusHeaderError(f"{name} must be a non-negative integer up to {MAX_NUMBER}")
    return int(text)


def parse_defer_length(text: str | None) -> bool:
    """Upload-Defer-Length: absent → False; its only valid value is 1."""
    if text is None:
        return False
    if text.strip() != "1":
        raise TusHeaderError("Upload-Defer-Length must be 1")
    return True


def parse_metadata(text: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated ``key base64value`` (the value may be absent).
    Lenient where tus is (empty header, spaces); strict on bad base64, duplicate keys
    and size. Values are decoded as UTF-8 (replacement characters for invalid bytes)."""
    if text is None or not text.strip():
        return {}
    if len(text) > MAX_METADATA_HEADER:
        raise TusHeaderError(f"Upload-Metadata is longer than {MAX_METADATA_HEADER}")
    pairs = [p.strip() for p in text.split(",")]
    if len(pairs) > MAX_METADATA_PAIRS:
        raise TusHeaderError(f"Upload-Metadata has more than {MAX_METADATA_PAIRS} pairs")
    out: dict[str, str] = {}
    for pair in pairs:
        if not pair:
            continue
        parts = pair.split()
        if len(parts) > 2 or not _KEY.fullmatch(parts[0]):
            raise TusHeaderError(f"Upload-Metadata pair {pair[:40]!r} is malformed")
        key = parts[0]
        if key in out:
            raise TusHeaderError(f"Upload-Metadata key {key!r} appears twice")
        out[key] = _b64(key, parts[1]) if len(parts) == 2 else ""
    return out


def _b64(key: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        raise TusHeaderError(f"Upload-Metadata value of {key!r} is not base64") from None


def encode_metadata(meta: dict[str, str]) -> str:
    """The Upload-Metadata header echoed on HEAD."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k
                    for k, v in meta.items())


def parse_checksum(text: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: ``<algorithm> <base64 digest>``; None when absent. An algorithm
    not offered is a 400 as tus specifies; the digest length is checked too."""
    if text is None:
        return None
    parts = text.strip().split()
    if len(parts) != 2:
        raise TusHeaderError("Upload-Checksum must be '<algorithm> <base64 digest>'")
    algo, value = parts[0].lower(), parts[1]
    if algo not in CHECKSUM_ALGORITHMS:
        raise TusHeaderError(f"Upload-Checksum algorithm must be one of "
                             f"{', '.join(CHECKSUM_ALGORITHMS)}")
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise TusHeaderError("Upload-Checksum digest is not base64") from None
    if len(digest) != {"sha1": 20, "sha256": 32}[algo]:
        raise TusHeaderError(f"Upload-Checksum digest has the wrong length for {algo}")
    return algo, digest


def origin(scheme: str, host: str, forwarded_proto: str | None,
           forwarded_host: str | None) -> str:
    """``scheme://host`` of an absolute Location. The forwarded values are given only
    when the peer is a trusted proxy; the first of a list is the one the client used.
    A forwarded value that is no plain scheme or host is ignored (it would end up in a
    URL the client follows); the request's own scheme and Host stand then."""
    def first(value: str | None) -> str:
        return (value or "").split(",")[0].strip()

    proto = first(forwarded_proto).lower()
    if proto in ("http", "https"):
        scheme = proto
    fwd = first(forwarded_host)
    if fwd and _HOST.fullmatch(fwd):
        host = fwd
    return f"{scheme}://{host}"


def method_of(method: str, override: str | None) -> str:
    """The method a request means: X-HTTP-Method-Override on a POST (proxies that drop
    PATCH or DELETE), else its own."""
    if method == "POST" and override:
        wanted = override.strip().upper()
        if wanted not in ("PATCH", "DELETE", "HEAD", "POST"):
            raise TusHeaderError("X-HTTP-Method-Override must be PATCH, DELETE or HEAD")
        return wanted
    return method
