"""Quotas and upload rates per API key.

A key may have a quota of bytes, of files, and a number of uploads it may start per
minute (``keys create/set-quota``). Usage is what the key's uploads show: each media's
size and one file per media, whether or not the same content was already stored;
upload tokens count against the key that issued them; deleting media gives its share
back (a trigger, so a cascade from ``messages`` does too).

Bytes are found over quota while they stream: a :class:`Reservation` per upload grows
batch by batch (about one store write batch of bytes) before those bytes are kept, by
one statement whose WHERE is the quota (sql/quotas.sql, ``reserve_quota``). Parallel
uploads of one key queue on its usage row, so together they never hold more than the
quota; the upload that would pass it is stopped (413) and nothing of it is kept. At the
finish, in the transaction that makes the media visible, the reservation becomes usage
and the file count is checked the same way. A reservation whose instance died is
released by the janitor after MEDIA_UPLOAD_STALE_SECONDS.
"""
from __future__ import annotations

import dataclasses
import time

from server.errors import QuotaExceeded, RateLimited
from server.store.sqlfiles import Q

UNCHANGED = object()   # set_quota: leave this limit as it is


@dataclasses.dataclass(frozen=True)
class Usage:
    key: str
    bytes: int
    files: int
    quota_bytes: int | None
    quota_files: int | None
    uploads_per_minute: int | None

    def json(self) -> dict:
        return dataclasses.asdict(self)


async def usage_of(conn, name: str) -> Usage | None:
    """The active key ``name``'s usage and limits, or None."""
    row = await Q.key_usage_by_name.fetchrow(conn, name=name)
    return Usage(**dict(row)) if row is not None else None


async def usage_page(conn, after: str | None, limit: int) -> tuple[list[Usage], bool]:
    """Up to ``limit`` active keys' usage by name after ``after``; and whether more follow."""
    rows = await Q.key_usage_page.fetch(conn, after=after, page_size=limit + 1)
    return [Usage(**dict(r)) for r in rows[:limit]], len(rows) > limit


async def set_quota(conn, name: str, *, quota_bytes=UNCHANGED, quota_files=UNCHANGED,
                    uploads_per_minute=UNCHANGED, audit=None) -> bool:
    """Change the active key ``name``'s limits (None lifts one; UNCHANGED keeps it);
    False when there is no such key. ``audit`` is written in the same transaction."""
    def value(v):
        return None if v is UNCHANGED else v
    params = dict(quota_bytes=value(quota_bytes), clear_bytes=quota_bytes is None,
                  quota_files=value(quota_files), clear_files=quota_files is None,
                  uploads_per_minute=value(uploads_per_minute),
                  clear_rate=uploads_per_minute is None)
    async with conn.transaction():
        row = await Q.set_key_quota.fetchrow(conn, name=name, **params)
        if row is not None:
            await Q.ensure_key_usage.execute(conn, key_id=row["id"])
            if audit is not None:
                await audit.write(conn)
    return row is not None


async def check_rate(store, key_id: int) -> None:
    """Count one upload started by ``key_id``; 429 with Retry-After past its rate."""
    async with store.connection() as conn:
        await _count_start(conn, key_id)


async def _count_start(conn, key_id: int) -> None:
    limits = await Q.key_limits.fetchrow(conn, key_id=key_id)
    per_minute = limits["uploads_per_minute"] if limits is not None else None
    if per_minute is None:
        return
    if per_minute == 0 or await Q.count_upload_start.fetchval(
            conn, key_id=key_id, per_minute=per_minute) is None:
        retry = 60 - int(time.time()) % 60
        raise RateLimited(f"this key may start {per_minute} uploads a minute",
                          headers={"Retry-After": str(retry)})


async def check_room(store, key_id: int, length: int) -> None:
    """413 now when ``length`` more bytes cannot fit the key's quota (a tus creation
    that announces its length); the bytes are still reserved as they are received."""
    async with store.connection() as conn:
        room = await Q.key_room.fetchval(conn, key_id=key_id)
    if room is not None and length > room:
        raise QuotaExceeded(f"Upload-Length exceeds this key's remaining quota ({room} bytes)")


class Reservation:
    """The bytes one upload in progress holds against its key's quota."""

    def __init__(self, store, key_id: int, reservation_id: int):
        self.store = store
        self.key_id = key_id
        self.id = reservation_id
        self.held = 0
        self._open = True

    @classmethod
    async def begin(cls, store, key_id: int, *, count_rate: bool = False) -> "Reservation":
        """A new, empty reservation; 413 at once when the key has no file left. With
        ``count_rate``, the upload also counts against the key's rate (429), on the
        same connection."""
        async with store.connection() as conn:
            if count_rate:
                await _count_start(conn, key_id)
            if await Q.files_full.fetchval(conn, key_id=key_id):
                raise QuotaExceeded("this key's file quota is used up; nothing was kept")
            rid = await Q.begin_reservation.fetchval(conn, key_id=key_id)
        return cls(store, key_id, rid)

    async def add(self, n: int) -> None:
        """Hold ``n`` more bytes, or raise QuotaExceeded."""
        if n <= 0:
            return
        async with self.store.connection() as conn:
            got = await Q.reserve_quota.fetchval(conn, id=self.id, key_id=self.key_id, n=n)
        if got is None:
            raise QuotaExceeded()
        self.held = got

    async def count(self, conn, media_id: int, file_size: int) -> None:
        """In the finishing transaction: the media counts against the key (its size,
        one file) and the reservation goes; QuotaExceeded past the file quota."""
        if await Q.count_upload.fetchval(conn, key_id=self.key_id, media_id=media_id,
                                         file_size=file_size) is None:
            raise QuotaExceeded("this key's file quota is used up; nothing was kept")
        await Q.release_reservation.execute(conn, id=self.id)

    async def release(self) -> None:
        """Give back what is held (an upload that ends without media). Idempotent; a
        reservation already counted is gone and this changes nothing."""
        if not self._open:
            return
        self._open = False
        async with self.store.connection() as conn:
            await Q.release_reservation.execute(conn, id=self.id)


async def release_stale(store, stale_seconds: float, batch: int = 100) -> int:
    """The janitor: release reservations idle for ``stale_seconds``; how many went.
    Also drops past minutes' rate counters."""
    released = 0
    async with store.connection() as conn:
        await Q.prune_upload_minutes.execute(conn)
    while True:
        async with store.connection() as conn:
            n = await Q.release_stale_reservations.fetchval(
                conn, stale_seconds=float(stale_seconds), batch=batch)
        released += n
        if n < batch:
            return released
