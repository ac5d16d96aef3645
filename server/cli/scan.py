"""``media-store scan [--since DATE]``: rescan stored content with clamd after a
signature update, with a progress bar (a line per finding when not on a terminal),
quarantining what is found. Each content is scanned once, however many media show it.
Exit code 0 when nothing was found, 3 when something was quarantined, 1 on failure."""
from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone

from server.hygiene.clamd import ClamdUnavailable
from server.hygiene.guard import scanner_from
from server.hygiene.scanning import rescan
from server.legacy.progress import Progress
from server.settings import Settings

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def scan_command(dsn: str, settings: Settings, since: datetime | None) -> int:
    scanner = scanner_from(settings)
    if scanner is None:
        print("error: MEDIA_SCAN_CLAMD is not set: nothing to scan with", file=sys.stderr)
        return 2
    try:
        scanned, found = asyncio.run(_scan(dsn, settings, scanner, since or EPOCH))
    except ClamdUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"scanned {scanned} content(s), quarantined {found}")
    return 3 if found else 0


async def _scan(dsn: str, settings: Settings, scanner, since: datetime) -> tuple[int, int]:
    from server.store.media import MediaStore
    from server.store.pool import create_pool
    pool = await create_pool(dsn, settings, admin=True)
    progress: Progress | None = None

    def total(n: int) -> None:
        nonlocal progress
        progress = Progress(n, "scan")

    def step(media_id: int, verdict) -> None:
        assert progress is not None
        if verdict is not None and not verdict.clean:
            progress.line(f"infected: media {media_id}: {verdict.signature} (quarantined)")
        progress.step()
    try:
        return await rescan(MediaStore(pool, chunk_size=settings.store.chunk_bytes), scanner,
                            since, on_total=total, on_media=step)
    finally:
        if progress is not None:
            progress.close()
        await pool.close()
