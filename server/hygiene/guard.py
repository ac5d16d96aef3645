"""One upload's hygiene, seen from ingest: its quota reservation, its virus scan, and
the quarantine check, behind four calls that ``ingest.receive`` and the store's upload
make (the only places the upload pipeline meets this package):

- ``start()`` before the first byte is read: the key's upload rate, its file quota,
  and the connection to clamd (503 now when it is down and MEDIA_SCAN_FAIL=closed);
- ``feed(piece)`` for every piece as it arrives: the piece goes on to clamd, and every
  ``batch`` bytes are reserved against the key's quota (413 the moment it is passed);
- ``end()`` once the body is complete: the last bytes reserved, clamd's verdict
  awaited (422 ``infected``; 503, or marked unscanned when failing open);
- ``finishing(conn, rec)`` in the transaction that makes the media visible
  (``Upload.guard``): quarantined content refused, the media counted against the key,
  an unscanned content queued for the scan worker;
- ``release()`` when the upload ends without media: what it held is given back.
"""
from __future__ import annotations

import logging

from aiohttp import web

from server.errors import QuarantinedContent, QuotaExceeded
from server.hygiene.clamd import parse_address
from server.hygiene.quotas import Reservation
from server.hygiene.scanning import SCANNER, Scanner
from server.security.access import PRINCIPAL
from server.settings import SETTINGS, Settings
from server.store.media import STORE, WRITE_BATCH
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)


class IngestGuard:
    """Quota (``key_id``), scan (``scanner``: a scanning.Scanner) and quarantine for one
    upload; either of the first two may be absent."""

    def __init__(self, store, *, key_id: int | None = None, scanner=None,
                 batch: int = 1024 * 1024, count_rate: bool = True):
        self.store = store
        self.key_id = key_id
        self.scanner = scanner
        self.batch = batch
        self.count_rate = count_rate
        self.reservation: Reservation | None = None
        self.scan = None          # scanning.ScanStream while one is open
        self.unscanned = False    # stored without a verdict (MEDIA_SCAN_FAIL=open)
        self._pending = 0

    async def start(self) -> None:
        if self.key_id is not None:
            self.reservation = await Reservation.begin(self.store, self.key_id,
                                                       count_rate=self.count_rate)
        if self.scanner is not None:
            self.scan = await self.scanner.open()
            self.unscanned = self.scan is None

    async def feed(self, piece: bytes) -> None:
        if self.scan is not None:
            if not await self.scan.send(piece):
                self.scan, self.unscanned = None, True
        if self.reservation is not None:
            self._pending += len(piece)
            if self._pending >= self.batch:
                n, self._pending = self._pending, 0
                await self.reservation.add(n)

    async def end(self) -> None:
        if self.reservation is not None and self._pending:
            n, self._pending = self._pending, 0
            await self.reservation.add(n)
        if self.scan is not None:
            scan, self.scan = self.scan, None
            if not await scan.verdict():
                self.unscanned = True

    async def finishing(self, conn, rec) -> None:
        """In the finishing transaction of media ``rec``."""
        reason = await Q.quarantine_reason.fetchval(conn, sha256=rec.sha256)
        if reason is not None:
            raise QuarantinedContent()
        if self.reservation is not None:
            await self.reservation.count(conn, rec.id, rec.file_size)
        if self.unscanned:
            await Q.mark_unscanned.execute(conn, sha256=rec.sha256, media_id=rec.id)

    async def release(self) -> None:
        if self.scan is not None:
            scan, self.scan = self.scan, None
            await scan.close()
        if self.reservation is not None:
            await _release(self.reservation)


async def _release(reservation: Reservation) -> None:
    try:
        await reservation.release()
    except Exception as e:   # the janitor releases it later; keep the real error
        log.warning("could not release quota reservation %s now: %s",
                    reservation.id, e.__class__.__name__)


class QuotaMeter:
    """The bytes of a stream kept piece by piece as they arrive (a tus PATCH), held
    against the key's quota a batch ahead of being kept (the store writes each chunk as
    it fills), so what is kept never passes the quota. Held only while the stream
    lasts: ``release()`` at its end, the janitor after a dead instance."""

    def __init__(self, reservation: Reservation, batch: int):
        self.reservation = reservation
        self.batch = batch
        self.used = 0

    @classmethod
    async def open(cls, request: web.Request, already: int) -> "QuotaMeter | None":
        """For the key the request acts for (None without one), holding ``already``
        bytes (the upload's, from earlier requests) at once: 413 when they no longer
        fit."""
        guard = guard_for(request, count_rate=False)
        if guard.key_id is None:
            return None
        meter = cls(await Reservation.begin(guard.store, guard.key_id), guard.batch)
        try:
            if await meter.admit(already) < already:
                raise QuotaExceeded("this upload no longer fits this key's quota")
        except BaseException:
            await meter.release()
            raise
        return meter

    async def admit(self, n: int) -> int:
        """``n`` more bytes arrived: how many of them may be kept, all but when the
        quota is passed (then the caller keeps those and stops)."""
        while (short := self.used + n - self.reservation.held) > 0:
            if not await self._reserve(self.batch):
                if short < self.batch:
                    await self._reserve(short)   # the last bytes that fit
                break
        kept = min(n, self.reservation.held - self.used)
        self.used += kept
        return kept

    async def _reserve(self, n: int) -> bool:
        try:
            await self.reservation.add(n)
        except QuotaExceeded:
            return False
        return True

    async def release(self) -> None:
        await _release(self.reservation)


def guard_for(request: web.Request, *, count_rate: bool = True) -> IngestGuard:
    """The guard of an upload made by this request: against the quota of the key it
    acts for (a token's issuer), scanned when MEDIA_SCAN_CLAMD is set. ``count_rate``:
    False where the upload was already counted (a tus upload, when it was created)."""
    principal = request.get(PRINCIPAL)
    return IngestGuard(request.app[STORE],
                       key_id=principal.key_id if principal is not None else None,
                       scanner=request.app.get(SCANNER),
                       batch=request.app[SETTINGS].store.chunk_bytes * WRITE_BATCH,
                       count_rate=count_rate)


def scanner_from(settings: Settings) -> Scanner | None:
    """The clamd client MEDIA_SCAN_CLAMD asks for, or None."""
    if settings.scan.clamd is None:
        return None
    return Scanner(parse_address(settings.scan.clamd), settings.scan.timeout_seconds,
                   settings.scan.fail_open)
