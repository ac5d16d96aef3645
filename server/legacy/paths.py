"""Which file of the legacy folder a name may designate: nothing outside the folder.

Two steps, so the dangerous part is a pure function with a table of tests:

- ``legacy_name(raw)`` takes the still percent-encoded tail of a URL path
  (``/uploads/media/<raw>``) and returns the relative name it designates, or None.
  Decoding is done here, segment by segment, so an encoded slash (``%2F``) can never
  become a separator; ``..``, ``.``, empty segments (``//``, a leading ``/``), NUL and
  other control characters, backslashes, and invalid UTF-8 are refused.
- ``resolve(root, name)`` then follows symlinks on the real file system and refuses
  anything whose real path leaves the folder, or that is not a regular file.

The importer names files with ``relative_name`` so that every imported name is one
``legacy_name`` accepts back (the redirect finds what the import recorded).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

MAX_NAME = 1024      # as legacy_media.legacy_name
MAX_SEGMENTS = 32
# Percent-escapes that would smuggle a separator or a NUL past the split on '/'.
_FORBIDDEN_ESCAPES = re.compile(r"%(2f|5c|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _segment_ok(seg: str) -> bool:
    return (seg not in ("", ".", "..") and "/" not in seg and "\\" not in seg
            and not _CONTROL.search(seg))


def legacy_name(raw: str) -> str | None:
    """The relative name an encoded URL tail designates, or None if it is not safe."""
    if not raw or len(raw) > 3 * MAX_NAME or _FORBIDDEN_ESCAPES.search(raw):
        return None
    parts = raw.split("/")
    if len(parts) > MAX_SEGMENTS:
        return None
    decoded = []
    for part in parts:
        try:
            seg = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if not _segment_ok(seg):
            return None
        decoded.append(seg)
    name = "/".join(decoded)
    return name if len(name) <= MAX_NAME else None


def relative_name(root: Path, path: Path) -> str | None:
    """The legacy name of ``path`` inside ``root`` (as os.walk found it), or None when
    it cannot be one (not UTF-8, control characters, too long)."""
    rel = os.path.relpath(path, root)
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:   # undecodable bytes in a name (surrogateescape)
        return None
    segs = rel.split(os.sep)
    if not all(_segment_ok(s) for s in segs):
        return None
    name = "/".join(segs)
    return name if len(name) <= MAX_NAME else None


def url_path(name: str) -> str:
    """The encoded URL tail for a legacy name (the inverse of ``legacy_name``)."""
    return "/".join(quote(seg, safe="") for seg in name.split("/"))


def resolve(root: Path, name: str) -> Path | None:
    """The real path of legacy file ``name`` under ``root``, or None when it does not
    exist, is not a regular file, or (through a symlink) lies outside ``root``."""
    if legacy_name(url_path(name)) != name:
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *name.split("/")))
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        return None
    if not os.path.isfile(real):
        return None
    return Path(real)
