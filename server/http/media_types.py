"""What a file is, decided from its first bytes, never from what the client claims: the
one table of the media types the service knows, and the sniffing behind it.

Everything that decides a type reads it: intake without processing and the legacy
folder (``sniff``: signatures only), processing (server/processing/detect.py: the same
signatures, then markup and text), the raw-upload check of a Content-Type, and settings
(MEDIA_ALLOWED_TYPES picks among ``KNOWN``). So it lives below all of them, with the
other pure HTTP helpers, and imports nothing of the server.

An allow-list: media a chat attaches (photos, videos, voice notes, documents). Anything
else, and anything a browser would execute, is refused at upload (415).
"""
from __future__ import annotations

from dataclasses import dataclass

import filetype

# Enough bytes for every signature below (filetype reads at most 8 KiB; MP4/MOV
# brands and the OOXML zip entries sit in the first few hundred bytes). Every decision
# is made on these bytes and no more, so the same file always gets the same type.
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class MediaKind:
    """A file's type and the table's row for it."""
    mime_type: str
    media_type: str | None   # image | video | audio | document; None: never stored
    extension: str | None    # the extension we store under


# Found by their signature: mime type -> (media_type, extension we store under).
SIGNED: dict[str, tuple[str, str]] = {
    "image/jpeg": ("image", "jpg"),
    "image/png": ("image", "png"),
    "image/gif": ("image", "gif"),
    "image/webp": ("image", "webp"),
    "image/heic": ("image", "heic"),
    "image/avif": ("image", "avif"),
    "image/bmp": ("image", "bmp"),
    "image/tiff": ("image", "tif"),
    "video/mp4": ("video", "mp4"),
    "video/x-m4v": ("video", "m4v"),
    "video/quicktime": ("video", "mov"),
    "video/3gpp": ("video", "3gp"),
    "video/webm": ("video", "webm"),
    "video/x-matroska": ("video", "mkv"),
    "video/mpeg": ("video", "mpg"),
    "video/x-msvideo": ("video", "avi"),
    "audio/ogg": ("audio", "ogg"),          # WhatsApp voice notes: Opus in Ogg
    "audio/mpeg": ("audio", "mp3"),
    "audio/mp4": ("audio", "m4a"),
    "audio/aac": ("audio", "aac"),
    "audio/amr": ("audio", "amr"),
    "audio/wav": ("audio", "wav"),
    "audio/flac": ("audio", "flac"),
    "application/pdf": ("document", "pdf"),
    "application/msword": ("document", "doc"),
    "application/vnd.ms-excel": ("document", "xls"),
    "application/vnd.ms-powerpoint": ("document", "ppt"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ("document", "docx"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ("document", "xlsx"),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ("document", "pptx"),
    "application/vnd.oasis.opendocument.text": ("document", "odt"),
    "application/vnd.oasis.opendocument.spreadsheet": ("document", "ods"),
    "application/vnd.oasis.opendocument.presentation": ("document", "odp"),
    "application/epub+zip": ("document", "epub"),
    "application/rtf": ("document", "rtf"),
    "application/zip": ("document", "zip"),
}

# Found from the text itself (server/processing/detect.py), never by a signature.
TEXT: dict[str, tuple[str, str]] = {
    "text/plain": ("document", "txt"),
    "text/csv": ("document", "csv"),
}

# Every type the service can recognise and store; MEDIA_ALLOWED_TYPES picks among them.
KNOWN: dict[str, tuple[str, str]] = {**SIGNED, **TEXT}
# Today's list, the default of MEDIA_ALLOWED_TYPES.
DEFAULT_ALLOWED = frozenset(KNOWN)
# The media_type column's values (media_files' CHECK constraint).
MEDIA_TYPES = ("image", "video", "audio", "document")

# filetype's name -> ours, where they differ: the names players and browsers expect.
CANONICAL = {"audio/x-wav": "audio/wav", "audio/x-flac": "audio/flac"}


def signature(head: bytes) -> str | None:
    """The mime type whose signature starts ``head`` (by the name we use), or None if no
    signature filetype knows matches; allowed or not."""
    kind = filetype.guess(head[:SNIFF_BYTES])
    return None if kind is None else CANONICAL.get(kind.mime, kind.mime)


def kind_of(mime: str) -> MediaKind:
    """The table's row for ``mime``; media_type and extension None if it has none."""
    media_type, ext = KNOWN.get(mime, (None, None))
    return MediaKind(mime, media_type, ext)


def sniff(head: bytes) -> MediaKind | None:
    """The kind of file whose first bytes are ``head``, by its signature alone, or None
    if it is not one the service stores."""
    mime = signature(head)
    return kind_of(mime) if mime in SIGNED else None


# A raw upload says what it is; anything else (forms, JSON, text) is not a file upload.
_RAW_PREFIXES = ("image/", "video/", "audio/")
_RAW_TYPES = {"application/octet-stream", "application/pdf", "application/zip",
              "application/msword", "application/rtf", "application/epub+zip"}


def is_raw_upload_type(content_type: str) -> bool:
    """Whether a request's Content-Type announces a file sent as the raw body."""
    ct = content_type.lower()
    return ct.startswith(_RAW_PREFIXES) or ct in _RAW_TYPES or ct.startswith(
        ("application/vnd.openxmlformats-", "application/vnd.oasis.opendocument.",
         "application/vnd.ms-"))
