"""What a file is, decided from its first bytes, never from what the client claims.

An allow-list: media a chat attaches (photos, videos, voice notes, documents). Anything
else, and anything a browser would execute, is refused at upload (415).
"""
from __future__ import annotations

from dataclasses import dataclass

import filetype

# Enough bytes for every signature below (filetype reads at most 8 KiB; MP4/MOV
# brands and the OOXML zip entries sit in the first few hundred bytes).
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class MediaKind:
    mime_type: str
    media_type: str   # image | video | audio | document
    extension: str


_ALLOWED: dict[str, tuple[str, str]] = {
    # mime type as filetype names it -> (media_type, extension we store under)
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
    "audio/x-wav": ("audio", "wav"),
    "audio/x-flac": ("audio", "flac"),
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

# The names players and browsers expect, where filetype's differ.
_CANONICAL = {"audio/x-wav": "audio/wav", "audio/x-flac": "audio/flac"}


def sniff(head: bytes) -> MediaKind | None:
    """The kind of file whose first bytes are ``head``, or None if not allowed."""
    kind = filetype.guess(head[:SNIFF_BYTES])
    if kind is None or kind.mime not in _ALLOWED:
        return None
    media_type, ext = _ALLOWED[kind.mime]
    return MediaKind(_CANONICAL.get(kind.mime, kind.mime), media_type, ext)


# A raw upload says what it is; anything else (forms, JSON, text) is not a file upload.
_RAW_PREFIXES = ("image/", "video/", "audio/")
_RAW_TYPES = {"application/octet-stream", "application/pdf", "application/zip",
              "application/msword", "application/rtf", "application/epub+zip"}


def is_raw_upload_type(content_type: str) -> bool:
    ct = content_type.lower()
    return ct.startswith(_RAW_PREFIXES) or ct in _RAW_TYPES or ct.startswith(
        ("application/vnd.openxmlformats-", "application/vnd.oasis.opendocument.",
         "application/vnd.ms-"))
