"""Finding the media an old /uploads/media name now is."""
from __future__ import annotations

from server.errors import MediaNotFound
from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q


async def media_for_legacy_name(store: MediaStore, name: str) -> MediaRecord | None:
    """The media imported from legacy file ``name``, else the media whose generated
    file_name it is (the URLs the first redirect handed out), else None."""
    async with store.connection() as conn:
        row = await Q.get_media_by_legacy_name.fetchrow(conn, legacy_name=name)
    if row is not None:
        return MediaRecord.from_row(row)
    try:
        return await store.stat_by_file_name(name)
    except MediaNotFound:
        return None
