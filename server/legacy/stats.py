"""stats: what the store holds, what the move from the legacy folder has done."""
from __future__ import annotations

from pathlib import Path

from server.legacy.files import list_folder
from server.store.media import MediaStore
from server.store.sqlfiles import Q


async def collect(store: MediaStore, legacy_dir: Path | None = None) -> dict:
    """The figures as one JSON-ready dict; ``legacy.left`` needs the folder."""
    async with store.connection() as conn:
        msgs = await Q.stats_messages.fetchrow(conn)
        by_type = await Q.stats_media_by_type.fetch(conn)
        uploading = await Q.stats_uploads_in_progress.fetchrow(conn)
        legacy = await Q.stats_legacy.fetchrow(conn)
        zapi = await Q.stats_zapi.fetchrow(conn)
        imported = ({r["legacy_name"] for r in await Q.legacy_map_all.fetch(conn)}
                    if legacy_dir is not None else set())
    storage, chunk_bytes = await store.storage_figures()
    left = None
    if legacy_dir is not None:
        listing = await list_folder(legacy_dir)
        left = len(set(listing.names) - imported) + len(listing.refused)
    return {
        "messages": msgs["messages"],
        "messages_with_media": msgs["messages_with_media"],
        "media_by_type": {r["media_type"]: {"count": r["files"], "bytes": r["bytes"],
                                            "stored_bytes": r["stored_bytes"]}
                          for r in by_type},
        # Stored once per content: what forwarding the same file saved (stored may
        # briefly exceed logical while deleted media's contents await the reclaim).
        "storage": {"logical_bytes": storage["logical_bytes"],
                    "stored_bytes": storage["stored_bytes"],
                    "dedup_saved_bytes": max(0, storage["logical_bytes"]
                                             - storage["stored_bytes"]),
                    "contents": storage["contents"]},
        "legacy": {"imported": legacy["files"], "imported_bytes": legacy["bytes"],
                   "left": left},
        "uploads_in_progress": {"count": uploading["uploads"], "bytes": uploading["bytes"]},
        "chunk_table_bytes": chunk_bytes,
        "zapi": {"sent": zapi["sent"], "not_sent": zapi["not_sent"],
                 "pending": zapi["pending"], "failed_or_unknown": zapi["stuck"]},
    }


async def growth(store: MediaStore, days: int) -> list[dict]:
    """Files and bytes added per UTC day over the last ``days`` days, oldest first
    (days with nothing added are absent)."""
    async with store.connection() as conn:
        rows = await Q.growth_per_day.fetch(conn, days=days)
    return [{"day": r["day"].isoformat(), "files": r["files"], "bytes": r["bytes"]}
            for r in reversed(rows)]


def render(stats: dict) -> list[str]:
    """The same figures for a person."""
    lines = [f"messages: {stats['messages']}",
             f"messages with media: {stats['messages_with_media']}",
             "media by type (files, bytes, as stored):"]
    for kind, t in stats["media_by_type"].items():
        lines.append(f"  {kind}: {t['count']}, {t['bytes']}, {t['stored_bytes']}")
    st = stats["storage"]
    lines.append(f"storage: {st['logical_bytes']} bytes shown, {st['stored_bytes']} stored "
                 f"in {st['contents']} contents ({st['dedup_saved_bytes']} saved by dedup)")
    lg = stats["legacy"]
    left = "unknown (give --from or MEDIA_LEGACY_DIR)" if lg["left"] is None else lg["left"]
    lines += [f"legacy files imported: {lg['imported']} ({lg['imported_bytes']} bytes), "
              f"left: {left}",
              f"uploads in progress: {stats['uploads_in_progress']['count']} "
              f"({stats['uploads_in_progress']['bytes']} bytes)",
              f"chunk table on disk: {stats['chunk_table_bytes']} bytes",
              f"Z-API: {stats['zapi']['sent']} sent, {stats['zapi']['not_sent']} not sent; "
              f"deliveries pending: {stats['zapi']['pending']}, failed or unknown: "
              f"{stats['zapi']['failed_or_unknown']}"]
    return lines
