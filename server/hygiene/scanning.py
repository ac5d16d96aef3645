"""Virus scanning with ClamAV (MEDIA_SCAN_CLAMD): every new content is streamed to clamd
as it is stored, and becomes visible only once clamd called it clean.

- Infected: 422 ``infected`` with the signature; the upload is aborted (nothing kept)
  and its audit row names the signature.
- clamd unreachable, or slower than MEDIA_SCAN_TIMEOUT_SECONDS at any step:
  MEDIA_SCAN_FAIL=closed (the default) refuses the upload, 503 with Retry-After,
  nothing kept; ``open`` stores it and records its content as unscanned
  (``unscanned_contents``), which :func:`scan_worker` scans once clamd answers again,
  quarantining it if infected.
- ``media-store scan [--since DATE]`` rescans stored content after a signature update
  (:func:`rescan`), quarantining what is found.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from server.errors import Infected, MediaNotFound, ScanUnavailable
from server.hygiene.clamd import Address, ClamdUnavailable, InStream, Verdict
from server.hygiene.quarantine import quarantine
from server.store.media import STORE
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

SCANNER_ACTOR = "scanner"
WORKER_INTERVAL_SECONDS = 30.0
WORKER_BATCH = 20
# A claimed batch not done within this long was left by a process that died.
CLAIM_SECONDS = 600.0


class Stream:
    """One upload's scan, with the failure mode applied: ``send`` and ``verdict``
    return False (open: go on unscanned) or raise ScanUnavailable (closed)."""

    def __init__(self, scanner: "Scanner", stream: InStream):
        self.scanner, self._stream = scanner, stream

    async def send(self, piece: bytes) -> bool:
        try:
            await self._stream.send(piece)
            return True
        except ClamdUnavailable as e:
            await self._stream.close()
            return self.scanner.unavailable(e)

    async def verdict(self) -> bool:
        """True when clean; raises Infected with the signature."""
        try:
            verdict = await self._stream.verdict()
        except ClamdUnavailable as e:
            return self.scanner.unavailable(e)
        if not verdict.clean:
            error = Infected(f"the file contains {verdict.signature}; nothing was kept")
            error.fields["signature"] = verdict.signature
            raise error
        return True

    async def close(self) -> None:
        await self._stream.close()


class Scanner:
    """clamd at ``address``; ``fail_open``: MEDIA_SCAN_FAIL=open."""

    def __init__(self, address: Address, timeout: float, fail_open: bool = False):
        self.address, self.timeout, self.fail_open = address, timeout, fail_open

    async def open(self) -> Stream | None:
        """A scan for one upload; None when clamd is unavailable and failing open."""
        try:
            return Stream(self, await InStream.open(self.address, self.timeout))
        except ClamdUnavailable as e:
            self.unavailable(e)
            return None

    def unavailable(self, error: ClamdUnavailable) -> bool:
        """False (go on unscanned) when failing open; else raise ScanUnavailable."""
        if self.fail_open:
            log.warning("%s; storing unscanned (MEDIA_SCAN_FAIL=open)", error)
            return False
        log.warning("%s; refusing the upload (MEDIA_SCAN_FAIL=closed)", error)
        raise ScanUnavailable() from error

    async def scan_media(self, store, media_id: int) -> Verdict | None:
        """The verdict on a stored media's bytes; None when it is gone. Raises
        ClamdUnavailable whatever the failure mode (the caller retries later)."""
        try:
            rec = await store.stat(media_id)
        except MediaNotFound:   # deleted meanwhile: nothing left to scan
            return None
        stream = await InStream.open(self.address, self.timeout)
        try:
            if rec.file_size:
                async for piece in store.read(rec, 0, rec.file_size - 1):
                    await stream.send(piece)
        except BaseException:
            await stream.close()
            raise
        return await stream.verdict()


async def quarantine_infected(store, sha256: bytes, media_id: int, signature: str) -> None:
    async with store.connection() as conn:
        await quarantine(conn, sha256, reason=f"infected: {signature}",
                         who=SCANNER_ACTOR, media_id=media_id)


async def scan_unscanned(store, scanner: Scanner, batch: int = WORKER_BATCH) -> int:
    """Scan a batch of the contents stored unscanned, claimed so that other processes'
    workers skip them meanwhile; how many got a verdict. Stops at the first
    ClamdUnavailable (raised: clamd still away), giving the rest of the batch back."""
    async with store.connection() as conn:
        rows = await Q.claim_unscanned.fetch(conn, batch=batch,
                                             claim_seconds=CLAIM_SECONDS)
    for i, row in enumerate(rows):
        sha256, media_id = bytes(row["sha256"]), row["media_id"]
        try:
            verdict = None if media_id is None else await scanner.scan_media(store, media_id)
        except BaseException:
            async with store.connection() as conn:
                await Q.unclaim_unscanned.execute(
                    conn, sha256s=[bytes(r["sha256"]) for r in rows[i:]])
            raise
        if verdict is not None and not verdict.clean:
            await quarantine_infected(store, sha256, media_id, verdict.signature or "")
            log.warning("content %s (media %s) is infected (%s): quarantined",
                        sha256.hex(), media_id, verdict.signature)
        async with store.connection() as conn:
            await Q.scanned.execute(conn, sha256=sha256)
    return len(rows)


async def scan_worker(app: web.Application) -> None:
    """Every WORKER_INTERVAL_SECONDS, scan what was stored unscanned (MEDIA_SCAN_FAIL=
    open while clamd was away)."""
    scanner = app.get(SCANNER)
    if scanner is None:
        return
    while True:
        try:
            while await scan_unscanned(app[STORE], scanner) == WORKER_BATCH:
                pass
        except asyncio.CancelledError:
            raise
        except ClamdUnavailable as e:
            log.info("scan worker: %s; will retry", e)
        except Exception:
            log.warning("scan worker run failed; will retry", exc_info=True)
        await asyncio.sleep(WORKER_INTERVAL_SECONDS)


async def rescan(store, scanner: Scanner, since: datetime,
                 on_total: Callable[[int], None] = lambda n: None,
                 on_media: Callable[[int, Verdict | None], None] = lambda i, v: None,
                 batch: int = 100) -> tuple[int, int]:
    """``media-store scan``: every content of media stored since ``since``, once;
    infected ones quarantined. (contents scanned, contents quarantined)."""
    async with store.connection() as conn:
        on_total(await Q.count_media_since.fetchval(conn, since=since))
    seen: set[bytes] = set()
    after, found = 0, 0
    while True:
        async with store.connection() as conn:
            rows = await Q.media_since.fetch(conn, since=since, after_id=after, batch=batch)
        for row in rows:
            after, sha256 = row["id"], bytes(row["sha256"])
            verdict = None
            if sha256 not in seen:
                seen.add(sha256)
                verdict = await scanner.scan_media(store, row["id"])
                if verdict is not None and not verdict.clean:
                    found += 1
                    await quarantine_infected(store, sha256, row["id"],
                                              verdict.signature or "")
            on_media(row["id"], verdict)
        if len(rows) < batch:
            return len(seen), found


SCANNER = web.AppKey("scanner", Scanner)
