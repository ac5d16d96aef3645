"""GET/HEAD /uploads/media/{name}: the old URLs, while the folder is retired and after.

- An imported file (by its legacy name, or by the generated file_name the earlier
  redirect used, for imported files only: any other media's file_name is a 404, never
  a credential) is redirected to the media's URL as media_json gives it, the query
  string kept. 302, not 301: that URL may be a signed one that expires, and after the
  sunset the old URL answers 410; a permanent redirect would be cached past both.
- During the transition (MEDIA_LEGACY_DIR set), a file not imported yet is served from
  the folder by the same decision code as stored media (api/serve.serve_record: ranges,
  validators, conditionals), with Deprecation (RFC 9745, from
  MEDIA_LEGACY_DEPRECATED_AT) and Sunset (RFC 8594, MEDIA_LEGACY_SUNSET) headers; every
  legacy answer (redirect, 404, 410) carries them too.
- After MEDIA_LEGACY_SUNSET every legacy URL answers 410.

Which file a URL may name is decided by legacy/paths.py on the still-encoded path:
traversal, encoded slashes, absolute paths, NUL, and symlinks out of the folder are 404.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import aiofiles
import aiofiles.os
from aiohttp import web

from server.api.media_json import media_json
from server.api.serve import Body, serve_record
from server.errors import LegacyGone, MediaNotFound, MediaPurged
from server.http.conditional import http_date
from server.http.disposition import content_disposition
from server.http.media_types import SNIFF_BYTES, sniff
from server.legacy.files import PIECE
from server.legacy.lookup import media_for_legacy_name, purged_legacy_name
from server.legacy.paths import legacy_name, resolve
from server.security import SIGNER
from server.security.audit import entry_for, record
from server.settings import SETTINGS
from server.store.media import STORE, MediaRecord, StorageCorrupt

PREFIX = "/uploads/media/"
# A legacy file may be imported (then redirected) at any time: cache it briefly, never
# as immutable.
TRANSITION_CACHE = "public, max-age=3600"


def sf_date(dt: datetime) -> str:
    """An HTTP structured-field Date (RFC 9651 §3.3.7): ``@`` and the whole seconds since
    the epoch (rounded down, so a deprecation is never announced later than set)."""
    return f"@{math.floor(dt.timestamp())}"


def deprecation_headers(deprecated_at: datetime | None,
                        sunset: datetime | None) -> dict[str, str]:
    """Deprecation (RFC 9745, a structured-field Date) and Sunset (RFC 8594, an HTTP
    date), each only when its date is set: RFC 9745 has no value for "deprecated, date
    unknown" (the draft's ``true`` is not a Date, and a strict parser drops it), and a
    made-up date (the time of the request, of the start) would be a different claim on
    every answer or restart."""
    headers = {}
    if deprecated_at is not None:
        headers["Deprecation"] = sf_date(deprecated_at)
    if sunset is not None:
        headers["Sunset"] = http_date(sunset)
    return headers


async def legacy_media(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    extra = deprecation_headers(settings.legacy.deprecated_at, settings.legacy.sunset)
    if settings.legacy.sunset is not None and \
            datetime.now(timezone.utc) >= settings.legacy.sunset:
        raise LegacyGone(headers=extra)
    raw = request.rel_url.raw_path
    name = legacy_name(raw[len(PREFIX):]) if raw.startswith(PREFIX) else None
    if name is None:
        raise MediaNotFound(headers=extra)
    rec = await media_for_legacy_name(request.app[STORE], name)
    if rec is not None:
        # A freshly signed URL (the plain one in public mode): the old exposure of a
        # public folder, not a new one; each such hand-out is in the audit log.
        url = media_json(rec, request.app[SIGNER])["url"]
        await record(request, entry_for(request, "legacy_redirect", media_id=rec.id,
                                        message_id=rec.message_id))
        return _redirect(request, url, extra)
    if await purged_legacy_name(request.app[STORE], name):
        raise MediaPurged(headers=extra)   # the folder may still hold the file
    path = resolve(settings.legacy.dir, name) if settings.legacy.dir is not None else None
    if path is None:
        raise MediaNotFound(headers=extra)
    return await _serve_file(request, path, name, extra)


def _redirect(request: web.Request, url: str, extra: dict[str, str]) -> web.Response:
    query = request.rel_url.raw_query_string
    if query:
        url += ("&" if "?" in url else "?") + query
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store",
                                             **extra})


async def _serve_file(request: web.Request, path: Path, name: str,
                      extra: dict[str, str]) -> web.StreamResponse:
    try:
        st = await aiofiles.os.stat(path)
        async with aiofiles.open(path, "rb") as f:
            head = await f.read(SNIFF_BYTES)
    except OSError:   # removed (cleaned up) since it was resolved
        raise MediaNotFound(headers=extra) from None
    kind = sniff(head)
    mtime = datetime.fromtimestamp(st.st_mtime, timezone.utc)
    # The file described as a media record, so that api/serve makes every decision
    # (preconditions, ranges, headers) exactly as for stored media. id 0: not stored.
    rec = MediaRecord(
        id=0, message_id=0, file_name=name, original_name=path.name,
        mime_type=kind.mime_type if kind else "application/octet-stream",
        file_size=st.st_size, media_type=kind.media_type if kind else "document",
        is_compressed=False, compression_quality=None, duration=None, dimensions=None,
        zapi_sent=False, zapi_message_id=None, created_at=mtime, updated_at=mtime,
        chunk_size=PIECE, chunk_count=-(-st.st_size // PIECE), sha256=bytes(32))
    headers = {**extra, "Cache-Control": TRANSITION_CACHE}
    if kind is None:
        # Not a type the service accepts: downloaded, never rendered (not vetted).
        headers["Content-Disposition"] = content_disposition(path.name, inline=False)
    # Strong enough: the legacy folder's files are replaced, never edited in place, and
    # size plus nanosecond mtime changes with any replacement (nginx's choice too).
    etag = f'"legacy-{st.st_mtime_ns:x}-{st.st_size:x}"'
    return await serve_record(request, FolderFile(path), rec, etag=etag, headers=headers)


class FolderFile:
    """The bytes of one legacy file, read the way the media store reads its chunks."""

    def __init__(self, path: Path):
        self.path = path

    async def read(self, rec: MediaRecord, start: int, end: int) -> Body:
        """Yield the bytes start..end (inclusive), in pieces; StorageCorrupt when the
        file went away or shrank meanwhile (a clean 404 before the headers)."""
        try:
            async with aiofiles.open(self.path, "rb") as f:
                await f.seek(start)
                left = end - start + 1
                while left > 0:
                    piece = await f.read(min(PIECE, left))
                    if not piece:
                        raise StorageCorrupt(f"{self.path} shrank while being served")
                    left -= len(piece)
                    yield piece
        except OSError as e:
            raise StorageCorrupt(f"{self.path}: {e.strerror}") from None
