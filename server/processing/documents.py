"""Documents: check that the container is what its signature says, without opening
what is inside (no decompression of archive members, no PDF parsing)."""
from __future__ import annotations

import codecs
import os
import zipfile

from server.errors import InvalidMedia, MediaTooComplex
from server.processing.detect import _CONTROL

MAX_ZIP_MEMBERS = 20_000
_OOXML = {"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "application/vnd.openxmlformats-officedocument.presentationml.presentation"}
_ZIPS = _OOXML | {"application/zip", "application/epub+zip",
                  "application/vnd.oasis.opendocument.text",
                  "application/vnd.oasis.opendocument.spreadsheet",
                  "application/vnd.oasis.opendocument.presentation"}


def validate_document(path: str, mime: str) -> None:
    """Raise InvalidMedia unless the file's structure holds together."""
    if mime in _ZIPS:
        _zip(path, mime)
    elif mime == "application/pdf":
        _pdf(path)
    elif mime in ("text/plain", "text/csv"):
        _text(path)


def _zip(path: str, mime: str) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise InvalidMedia("the archive is damaged or truncated") from None
    if len(names) > MAX_ZIP_MEMBERS:
        raise MediaTooComplex(f"more than {MAX_ZIP_MEMBERS} files in the archive")
    if mime in _OOXML and "[Content_Types].xml" not in names:
        raise InvalidMedia("not an Office document")


def _pdf(path: str) -> None:
    # Readers look for the end-of-file marker in the last KiB; allow some trailing junk.
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 64 * 1024))
        tail = f.read()
    if b"%%EOF" not in tail:
        raise InvalidMedia("the PDF is truncated (no end-of-file marker)")


def _text(path: str) -> None:
    dec = codecs.getincrementaldecoder("utf-8-sig")()
    with open(path, "rb") as f:
        try:
            while block := f.read(1024 * 1024):
                if _CONTROL.search(dec.decode(block)):
                    raise InvalidMedia("not a text file: binary control characters")
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidMedia("not a text file: invalid UTF-8") from None
