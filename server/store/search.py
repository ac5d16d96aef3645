"""Searching complete media, newest first, a page at a time (keyset, not OFFSET).

A page asks for the rows strictly after the last one of the previous page in the order
(created_at DESC, id DESC). Media added meanwhile is newer than that point, so it never
shifts later pages: a walk returns every file that was visible when it began (and was
not deleted since) exactly once.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q

FIRST_PAGE = (datetime.max.replace(tzinfo=timezone.utc), 0)


@dataclasses.dataclass(frozen=True)
class Filters:
    message_id: int | None = None
    media_type: str | None = None
    mime_type: str | None = None
    since: datetime | None = None    # inclusive
    until: datetime | None = None    # exclusive
    sha256: bytes | None = None      # one content, wherever it is shown
    name: str | None = None          # a substring of the original name


async def search(store: MediaStore, f: Filters, after: tuple[datetime, int] | None,
                 limit: int) -> list[MediaRecord]:
    """Up to ``limit`` complete media matching ``f``, newest first, after ``after``."""
    after_at, after_id = after or FIRST_PAGE
    common = dict(since=f.since, until=f.until, after_at=after_at, after_id=after_id, n=limit)
    # The most selective filter leads: each statement is planned on its own index.
    if f.sha256 is not None:
        st, params = Q.search_media_by_sha256, dict(sha256=f.sha256,
                                                    media_type=f.media_type)
    elif f.message_id is not None:
        st, params = Q.search_media_by_message, dict(
            message_id=f.message_id, media_type=f.media_type, mime_type=f.mime_type)
    elif f.mime_type is not None:
        st, params = Q.search_media_by_mime, dict(mime_type=f.mime_type,
                                                  media_type=f.media_type)
    elif f.name is not None:
        st, params = Q.search_media_by_name, dict(name=f.name, media_type=f.media_type)
    elif f.media_type is not None:
        st, params = Q.search_media_by_type, dict(media_type=f.media_type)
    else:
        st, params = Q.search_media_all, {}
    async with store.connection() as conn:
        rows = await st.fetch(conn, **params, **common)
    return [MediaRecord.from_row(r) for r in rows]
