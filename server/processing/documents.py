"""Documents: check that the container is what its signature says, without opening
what is inside (no decompression of archive members, no PDF parsing).

Only archives need the whole file; a PDF (its end marker) and text (UTF-8 without
binary controls) are checked as their bytes stream in, so an upload of either is never
copied to a temporary file (pipeline.py)."""
from __future__ import annotations

import codecs
import dataclasses
import os
import struct
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


# The end of an archive that holds its directory's record: the EOCD (22 bytes and a
# comment of up to 65,535), and before it the zip64 locator (20) and zip64 EOCD (56).
_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
ZIP_TAIL_BYTES = _EOCD.size + 0xFFFF + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size
# A directory entry is 46 bytes, its name (rarely past a few hundred) and extra fields.
MAX_ZIP_ENTRY_BYTES = 1024
_MIN_ZIP_ENTRY_BYTES = 46


@dataclasses.dataclass(frozen=True)
class ZipDirectory:
    """What an archive's end record says of its central directory."""
    entries: int
    size: int       # bytes


def zip_directory(tail: bytes) -> ZipDirectory | None:
    """The central directory's entry count and size from an archive's last bytes (at
    least ZIP_TAIL_BYTES of them, or the whole file), with the zip64 record where there
    is one; None when no end record is found. Nothing of the directory itself is read:
    this decides whether it may be. The records are found where Python's zipfile looks
    for them, so what is counted here is what zipfile would read."""
    n = len(tail)
    if n < _EOCD.size:
        return None
    if tail[n - _EOCD.size:n - _EOCD.size + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        at = n - _EOCD.size          # no comment: the common case
    else:                            # the last signature within a comment's reach
        at = tail.rfind(b"PK\x05\x06", max(0, n - _EOCD.size - 0xFFFF), n - _EOCD.size + 4)
        if at < 0:
            return None
    _, _, _, _, entries, size, _, _ = _EOCD.unpack_from(tail, at)
    loc = at - _ZIP64_LOCATOR.size
    if loc >= 0 and tail[loc:loc + 4] == b"PK\x06\x07":
        start = loc - _ZIP64_EOCD.size          # zipfile reads it right before
        if start < 0 or tail[start:start + 4] != b"PK\x06\x06":
            return None
        z = _ZIP64_EOCD.unpack_from(tail, start)
        entries, size = z[7], z[8]
    return ZipDirectory(entries, size)


def check_zip_directory(d: ZipDirectory | None) -> None:
    """Refuse an archive whose directory is missing, too large to read, or too short
    for the entries it claims."""
    if d is None:
        raise InvalidMedia("the archive is damaged or truncated")
    if d.entries > MAX_ZIP_MEMBERS:
        raise MediaTooComplex(f"more than {MAX_ZIP_MEMBERS} files in the archive")
    if d.size > MAX_ZIP_MEMBERS * MAX_ZIP_ENTRY_BYTES:
        raise MediaTooComplex(f"the archive's directory is larger than "
                              f"{MAX_ZIP_MEMBERS * MAX_ZIP_ENTRY_BYTES} bytes")
    if d.size < d.entries * _MIN_ZIP_ENTRY_BYTES:
        raise InvalidMedia("the archive is damaged or truncated")


def _zip(path: str, mime: str) -> None:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - ZIP_TAIL_BYTES))
        check_zip_directory(zip_directory(f.read()))
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        raise InvalidMedia("the archive is damaged or truncated") from None
    if len(names) > MAX_ZIP_MEMBERS:    # the end record lied about its count
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
