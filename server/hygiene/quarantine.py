"""Quarantine: content pulled by an administrator (or found infected), by its sha256.

Every media showing the content stops being served: reads and HEAD answer 451 (RFC
7725) with ``Cache-Control: no-store``, signed URLs included; its JSON says so to
admins; new uploads of the same bytes are refused (422 ``quarantined_content``).
Quarantined content is kept (for review) until released or deleted by an admin.
Each instance hears a quarantine and its release at once: a trigger announces it on
the deletes' channel for every media showing the content (migration quarantine).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from server.errors import MediaNotFound
from server.store.sqlfiles import Q


@dataclasses.dataclass(frozen=True)
class Quarantined:
    sha256: bytes
    reason: str
    quarantined_by: str
    quarantined_at: datetime
    media_id: int | None
    media: int            # media showing it now

    def json(self) -> dict:
        return {"sha256": self.sha256.hex(), "reason": self.reason,
                "quarantined_by": self.quarantined_by,
                "quarantined_at": self.quarantined_at.isoformat(),
                "media_id": self.media_id, "media": self.media}


async def content_of(conn, media_id: int) -> bytes:
    """The sha256 of a complete media's content; MediaNotFound."""
    sha256 = await Q.media_content.fetchval(conn, id=media_id)
    if sha256 is None:
        raise MediaNotFound()
    return bytes(sha256)


async def quarantine(conn, sha256: bytes, *, reason: str, who: str,
                     media_id: int | None = None, audit=None) -> bool:
    """Quarantine a content; False when it already was (its first reason stays).
    ``audit`` is written in the same transaction."""
    async with conn.transaction():
        added = await Q.quarantine_content.fetchval(
            conn, sha256=sha256, reason=reason, quarantined_by=who[:120],
            media_id=media_id) is not None
        if audit is not None:
            await audit.write(conn, media_id=media_id,
                              outcome="ok" if added else "ok: already quarantined")
    return added


async def release(conn, sha256: bytes, *, media_id: int | None = None,
                  audit=None) -> bool:
    """Serve a content again; False (nothing written) when it was not quarantined."""
    async with conn.transaction():
        released = await Q.release_quarantine.fetchval(conn, sha256=sha256) is not None
        if released and audit is not None:
            await audit.write(conn, media_id=media_id)
    return released


async def page(conn, after: tuple[datetime, bytes] | None,
               limit: int) -> tuple[list[Quarantined], bool]:
    """Up to ``limit`` quarantined contents, newest first, after ``after``."""
    rows = await Q.quarantine_page.fetch(
        conn, after_at=after[0] if after else None, after_sha256=after[1] if after else None,
        page_size=limit + 1)
    items = [Quarantined(**{**dict(r), "sha256": bytes(r["sha256"])}) for r in rows[:limit]]
    return items, len(rows) > limit
