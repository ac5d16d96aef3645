"""Schema migrations: yoyo-migrations over psycopg, a synchronous step.

yoyo's lock (a row in yoyo_lock) keeps two instances starting at once from both
migrating; the second waits, then finds nothing left to apply.
"""
from __future__ import annotations

import logging
from pathlib import Path

from yoyo import get_backend, read_migrations

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def yoyo_url(dsn: str) -> str:
    """yoyo picks its driver from the URL scheme; psycopg 3 is 'postgresql+psycopg'."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        raise ValueError("not a postgresql:// URL")
    return "postgresql+psycopg://" + rest


def apply_migrations(dsn: str, *, lock_timeout: int = 120) -> list[str]:
    """Apply every pending migration; return the ids applied (empty when up to date)."""
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock(timeout=lock_timeout):
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        applied = [m.id for m in pending]
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        return applied
    finally:
        backend.connection.close()


def rollback_migrations(dsn: str, count: int = 1) -> list[str]:
    """Roll back the last ``count`` applied migrations (for operators and tests)."""
    if count < 1:
        # A slice bound of 0 or below would roll back nothing, or all but a few.
        raise ValueError(f"count must be 1 or more, got {count}")
    backend = get_backend(yoyo_url(dsn))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            todo = backend.to_rollback(migrations)[:count]
            backend.rollback_migrations(todo)
        return [m.id for m in todo]
    finally:
        backend.connection.close()
