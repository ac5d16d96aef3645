"""Schema migrations: yoyo-migrations over psycopg, a synchronous step.

yoyo's lock (a row in yoyo_lock) keeps two instances starting at once from both
migrating; the second waits, then finds nothing left to apply. That row outlives a
migrator killed mid-way, and yoyo would then wait and fail on every later start; so
each migrator first takes a PostgreSQL session lock, which dies with its holder, and
while holding it clears any yoyo lock row, which can then only be stale.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from server.resources import MIGRATIONS_DIR
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

# Optional: hash-partitioning media_chunks (docs/scaling.md); applied on request only.
PARTITIONING_DIR = MIGRATIONS_DIR / "partitioning"


def yoyo_url(dsn: str) -> str:
    """yoyo picks its driver from the URL scheme; psycopg 3 is 'postgresql+psycopg'."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError("not a postgresql:// URL")
    return "postgresql+psycopg://" + rest


LOCK_TIMEOUT = 120


@contextlib.contextmanager
def _backend(dsn: str):
    backend = get_backend(yoyo_url(dsn))
    try:
        yield backend
    finally:
        backend.connection.close()


@contextlib.contextmanager
def exclusive(backend, timeout: float = LOCK_TIMEOUT):
    """Hold the migrators' session lock, clear a yoyo lock left by a dead migrator, then
    hold yoyo's own lock too."""
    conn = backend.connection
    deadline = time.monotonic() + timeout
    while not conn.execute(Q.try_migration_lock.sql).fetchone()[0]:
        if time.monotonic() > deadline:
            raise LockTimeout("another migrator has held the lock for "
                              f"{timeout:.0f} s")
        time.sleep(0.2)
    try:
        backend.create_lock_table()
        stale = conn.execute(Q.yoyo_lock_rows.sql).fetchone()[0]
        if stale:
            log.warning("clearing a yoyo lock left by a migrator that died")
            backend.break_lock()
        with backend.lock(timeout=timeout):
            yield
    finally:
        conn.execute(Q.release_migration_lock.sql)


def apply_migrations(dsn: str, *, lock_timeout: int = LOCK_TIMEOUT,
                     folder: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; return the ids applied (empty when up to date)."""
    with _backend(dsn) as backend:
        migrations = read_migrations(str(folder))
        with exclusive(backend, lock_timeout):
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    applied = [m.id for m in pending]
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied


def pending_migrations(dsn: str) -> list[str]:
    """The ids of migrations not yet applied (read-only: takes no lock)."""
    with _backend(dsn) as backend:
        return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))]


def rollback_migrations(dsn: str, count: int = 1, *,
                        folder: Path = MIGRATIONS_DIR) -> list[str]:
    """Roll back the last ``count`` applied migrations (for operators and tests)."""
    if count < 1:
        # A slice bound of 0 or below would roll back nothing, or all but a few.
        raise ValueError(f"count must be 1 or more, got {count}")
    with _backend(dsn) as backend:
        migrations = read_migrations(str(folder))
        with exclusive(backend):
            todo = backend.to_rollback(migrations)[:count]
            backend.rollback_migrations(todo)
    return [m.id for m in todo]
