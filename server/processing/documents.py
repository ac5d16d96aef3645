"""Documents: check that the container is what its signature says, without opening
what is inside (no decompression of archive members, no PDF parsing).

Only archives need the whole file; a PDF (its end marker) and text (UTF-8 without
binary controls) are checked as their bytes stream in, so an upload of either is never
copied to a temporary file (pipeline.py)."""
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


def needs_whole_file(mime: str) -> bool:
    """Whether checking this document takes the whole file (an archive's directory is
    at its end and points back into it); the others are checked as they stream in."""
    return mime in _ZIPS


class StreamCheck:
    """A document's check fed its bytes in order: ``feed`` raises InvalidMedia as soon
    as the bytes so far prove the file bad, ``finish`` once they are all in."""

    # How many of the last bytes decide it, when only the end matters (None: all).
    TAIL: int | None = None

    def feed(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        pass


def stream_check(mime: str) -> StreamCheck:
    """The check for a type ``needs_whole_file`` says no to."""
    if mime == "application/pdf":
        return _PdfEnd()
    if mime in ("text/plain", "text/csv"):
        return _Utf8Text()
    return StreamCheck()


def validate_document(path: str, mime: str) -> None:
    """Raise InvalidMedia unless the file's structure holds together."""
    if needs_whole_file(mime):
        _zip(path, mime)
        return
    check = stream_check(mime)
    with open(path, "rb") as f:
        if check.TAIL is not None:   # only the end matters: skip the rest
            f.seek(max(0, os.fstat(f.fileno()).st_size - check.TAIL))
        while block := f.read(1024 * 1024):
            check.feed(block)
    check.finish()


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


class _PdfEnd(StreamCheck):
    # Readers look for the end-of-file marker in the last KiB; allow some trailing junk.
    TAIL = 64 * 1024

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> None:
        if len(data) >= self.TAIL:
            self._tail = data[-self.TAIL:]
        else:
            self._tail = (self._tail + data)[-self.TAIL:]

    def finish(self) -> None:
        if b"%%EOF" not in self._tail:
            raise InvalidMedia("the PDF is truncated (no end-of-file marker)")


class _Utf8Text(StreamCheck):
    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8-sig")()

    def feed(self, data: bytes) -> None:
        try:
            text = self._dec.decode(data)
        except UnicodeDecodeError:
            raise InvalidMedia("not a text file: invalid UTF-8") from None
        if _CONTROL.search(text):
            raise InvalidMedia("not a text file: binary control characters")

    def finish(self) -> None:
        try:
            self._dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InvalidMedia("not a text file: invalid UTF-8") from None
