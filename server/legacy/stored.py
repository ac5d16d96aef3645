"""The stored side of the move: complete media walked in id order, a page at a time."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from server.store.media import MediaStore
from server.store.sqlfiles import Q

BATCH = 500   # media ids per page


async def stored_media(store: MediaStore, message_id: int | None = None,
                       since: datetime | None = None
                       ) -> AsyncIterator[tuple[int, str | None]]:
    """(media id, legacy name or None) of every complete media, optionally one
    message's or created since a date; no connection is held between pages."""
    after = 0
    while True:
        async with store.connection() as conn:
            rows = await Q.media_ids_page.fetch(conn, after=after, message_id=message_id,
                                                since=since, batch=BATCH)
        for r in rows:
            yield r["id"], r["legacy_name"]
        if len(rows) < BATCH:
            return
        after = rows[-1]["id"]
