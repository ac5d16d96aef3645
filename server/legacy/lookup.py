"""Finding the media an old /uploads/media name now is."""
from __future__ import annotations

from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q


async def media_for_legacy_name(store: MediaStore, name: str) -> MediaRecord | None:
    """The media imported from legacy file ``name``, else the media imported from a
    legacy file whose generated file_name ``name`` is (the URLs the first redirect
    handed out), else None.

    Only names that were legacy files answer: the redirect hands out a freshly signed
    URL without any credential, so any other media's file_name would be a permanent
    credential nobody could revoke."""
    async with store.connection() as conn:
        row = await Q.get_media_by_legacy_name.fetchrow(conn, legacy_name=name)
        if row is None:
            row = await Q.get_legacy_media_by_file_name.fetchrow(conn, file_name=name)
    return MediaRecord.from_row(row) if row is not None else None


async def purged_legacy_name(store: MediaStore, name: str) -> bool:
    """Whether legacy file ``name`` was imported and its media since purged by
    retention (its URL then answers 410, not the folder's copy)."""
    async with store.connection() as conn:
        return await Q.is_purged_legacy_name.fetchval(conn, legacy_name=name)
