"""The file name a client meant, from the Content-Disposition of an upload.

Clients escape the plain ``filename="..."`` parameter in two ways, neither of which
says so in the header:

- aiohttp's client (and others) percent-encode every byte outside ``A-Za-z0-9_.-~``,
  as RFC 7578 §4.2 allows, so ``relatório.pdf`` arrives as ``relat%C3%B3rio.pdf`` and
  ``100%.pdf`` as ``100%25.pdf``;
- browsers and curl send the name as raw UTF-8 and escape only ``"``, CR and LF as
  ``%22``, ``%0D``, ``%0A`` (the HTML standard's multipart/form-data encoding), leaving
  a literal ``%`` as it is.

So a name is decoded whole only when it is ASCII, every ``%`` in it starts a ``%XX``
escape, and the bytes decode as UTF-8. Otherwise (raw non-ASCII characters, a ``%``
that escapes nothing, bytes that are not UTF-8) it was not percent-encoded as a whole,
and only the three browser escapes are undone: ``100%.pdf`` and ``50%FF.pdf`` stay.

``filename*`` (RFC 8187) says its own encoding and keeps priority over all of this
(RFC 7578 §4.2 tells senders not to use it; some do). See docs/http-serving.md.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from aiohttp.multipart import content_disposition_filename, parse_content_disposition

_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")          # a '%' that escapes nothing
_BROWSER_ESCAPES = re.compile(r"%(22|0[Dd]|0[Aa])")


def decode_form_filename(name: str) -> str:
    """The name ``name`` stands for, undoing a client's percent-encoding (see above)."""
    if "%" not in name:
        return name
    if name.isascii() and not _PERCENT.search(name):
        try:
            return unquote_to_bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            pass
    return _BROWSER_ESCAPES.sub(lambda m: chr(int(m[1], 16)), name)


def form_filename(params: Mapping[str, str]) -> str | None:
    """The file name in parsed Content-Disposition parameters (aiohttp's
    ``parse_content_disposition``), or None when there is none."""
    if any(key.startswith("filename*") for key in params) or "filename" not in params:
        # filename* is decoded by aiohttp per RFC 8187; its continuations likewise.
        return content_disposition_filename(params, "filename")
    return decode_form_filename(params["filename"])


def header_filename(header: str | None) -> str | None:
    """The file name in a Content-Disposition header value (of a form part, or of a raw
    upload); None when there is none or the header cannot be parsed."""
    if not header:
        return None
    with warnings.catch_warnings():
        # A malformed header just means no name; aiohttp would warn on each one.
        warnings.simplefilter("ignore")
        _, params = parse_content_disposition(header)
    return form_filename(params)
