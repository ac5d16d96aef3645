"""Content-Disposition for stored media, and which types must not render inline.

RFC 6266 (Content-Disposition in HTTP) with RFC 8187 (``filename*`` encoding).
aiohttp's ``content_disposition_header`` targets multipart forms, not this.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_FALLBACK_NAME = "file"
# Cc: C0/C1 controls (CR/LF split headers); Cf: invisible format characters such as
# U+202E RIGHT-TO-LEFT OVERRIDE, which disguises "gpj.exe" as "exe.jpg"; Cs: lone
# surrogates from undecodable bytes, which cannot be encoded as UTF-8; Zl/Zp: line
# and paragraph separators, which some software treats as newlines.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# RFC 8187 §3.2.1 attr-char minus ALPHA / DIGIT and the "-._~" that quote() keeps.
_ATTR_CHAR_EXTRA = "!#$&+^`|"
# Characters never put inside filename="...": the quoted-string delimiters
# (RFC 9110 §5.6.4), path separators, and "%", which some user agents decode
# (RFC 6266 Appendix D).
_FALLBACK_UNSAFE = frozenset('"\\/%')

# RFC 9110 §8.3.1: type "/" subtype, both tokens (§5.6.2).
_TOKEN = r"[!#$%&'*+.^_`|~0-9a-z-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_UNSAFE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xsl",
        "application/x-shockwave-flash",
        # RFC 9239: text/javascript and the historic JavaScript types it lists.
        "text/javascript",
        *(f"text/javascript1.{minor}" for minor in range(6)),
        "application/javascript",
        "application/ecmascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    }
)


def _split_extension(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    return (name, "") if dot <= 0 else (name[:dot], name[dot:])


def sanitize_filename(name: str | None, max_len: int = 255) -> str:
    """Return a safe, non-empty, UTF-8-encodable file name derived from ``name``.

    NFC-normalises, keeps the last path component, drops control and invisible
    format characters, lone surrogates and ``"``, strips surrounding whitespace,
    and truncates to ``max_len`` characters keeping the extension when it fits.
    Empty and dots-only results become ``"file"``.
    """
    if not name:
        return _FALLBACK_NAME
    # Surrogates first: NFC must not see them, and they cannot be encoded anyway.
    name = "".join(c for c in name if not "\ud800" <= c <= "\udfff")
    # RFC 6266 §4.3: recipients should keep only the last path component; do it
    # here too so no separator (either OS's) reaches the header (RFC 9110 §17.3).
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    name = "".join(
        c for c in name if c != '"' and unicodedata.category(c) not in _DROPPED_CATEGORIES
    ).strip()
    if len(name) > max_len:
        stem, ext = _split_extension(name)
        if ext and len(ext) < max_len:
            name = stem[: max_len - len(ext)].rstrip() + ext
        else:
            name = name[:max_len]
        name = name.strip()
    # "." and ".." name directories, never a file.
    if not name.strip("."):
        return _FALLBACK_NAME
    return name


def _ascii_fallback(name: str) -> str:
    out = []
    for char in name:
        if not char.isascii():
            # ç -> "c" + U+0327: keep the base letter, drop combining marks.
            base = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            # NFKD can also yield "/", '"' or "\\" (from full-width forms): re-check.
            char = base if base.isascii() and base.isprintable() and base else "_"
        out.append("".join("_" if c in _FALLBACK_UNSAFE else c for c in char))
    return "".join(out)


def content_disposition(filename: str, *, inline: bool = True) -> str:
    """Build ``inline|attachment; filename="<ascii>"; filename*=UTF-8''<pct-encoded>``.

    The ASCII ``filename`` comes first for old user agents; RFC 6266 §4.3 says
    ``filename*`` wins where it is understood.  Both are always emitted, even for
    ASCII names, which keeps one code path and is always valid.
    """
    name = sanitize_filename(filename)  # again: callers may pass raw user input
    fallback = _ascii_fallback(name)
    # RFC 8187 §3.2.1: UTF-8 bytes, everything but attr-char percent-encoded
    # (so a space is %20, never "+").
    encoded = quote(name, safe=_ATTR_CHAR_EXTRA, encoding="utf-8")
    disposition = "inline" if inline else "attachment"
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def is_unsafe_inline(mime_type: str) -> bool:
    """Whether a browser could run or render ``mime_type`` as a document.

    Such types (HTML, XHTML, SVG, any XML, JavaScript, XSL, Flash) must be served
    as attachments: inline they would run script in the service's origin.
    Parameters and case are ignored; an unparseable type counts as unsafe.
    """
    essence = mime_type.split(";", 1)[0].strip(" \t").lower()
    match = _MEDIA_TYPE.fullmatch(essence)
    if match is None or "*" in essence:  # a wildcard is not a type a file can have
        return True
    subtype = match[2]
    # XML can carry XHTML or an xml-stylesheet that produces HTML.
    return essence in _UNSAFE_TYPES or subtype == "xml" or subtype.endswith("+xml")
