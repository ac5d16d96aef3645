"""The command line: serve and the admin commands.

Installed, the console script ``media-store``; from a checkout, ``python run.py``:

    media-store                serve (migrating first unless MEDIA_AUTO_MIGRATE=false)
    media-store serve --no-migrate
    media-store migrate        apply pending migrations and exit
    media-store rollback N     roll back the last N migrations
    media-store reclaim        delete abandoned uploads and unreferenced content now (what the janitor does)
    media-store create-message insert a message to attach media to; prints its id
    media-store partition-chunks   hash-partition content_chunks (docs/scaling.md)
    media-store keys create NAME [--scope read|write|admin] [--quota-bytes N]
                               [--quota-files N] [--uploads-per-minute N]
                               prints the new API key
    media-store keys set-quota NAME [--quota-bytes N] ...   ('none' lifts one)
    media-store keys list | keys revoke NAME
    media-store purge --older-than 365d [--type video] [--dry-run]
                               remove old media now (retention; server/cli/purge.py)
    media-store scan [--since DATE]   rescan stored content with clamd (MEDIA_SCAN_CLAMD)
    media-store import-legacy | verify | cleanup-legacy | export | stats
                               the move from /uploads/media (server/cli/legacy.py)

Without DATABASE_URL every command uses the embedded PostgreSQL in MEDIA_DATA_DIR,
started here and stopped on exit, SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys

from server.cli import legacy as legacy_cli
from server.cli import purge as purge_cli
from server.secret import redact
from server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("media")


class SchemaBehind(Exception):
    """Serving was asked for without migrating, and migrations are pending."""


@contextlib.contextmanager
def database(settings: Settings):
    """Yield a DSN: DATABASE_URL, or the embedded server, stopped when the block ends."""
    if settings.db.url:
        yield settings.db.url.reveal()
        return
    from server.cli import embedded_pg
    server = embedded_pg.start(settings.db.data_dir)
    try:
        yield server.get_uri()
    finally:
        _ignore_exit_signals()
        embedded_pg.stop(server)


def _ignore_exit_signals() -> None:
    # Only exiting is left to do. A second Ctrl-C or SIGTERM (an impatient operator, a
    # process manager) must not cut the stop short: after web.run_app the SIGTERM
    # disposition is back to the default, so it would kill this process and leave
    # PostgreSQL running. SIGKILL still ends a stop that hangs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _sigterm_as_exit() -> None:
    # pgserver stops its server from atexit, which a bare SIGTERM skips; make SIGTERM
    # unwind like Ctrl-C so the finally blocks run (the aiohttp runner installs its own
    # handler while serving).
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def serve(settings: Settings, migrate: bool, workers: int) -> int:
    from server.cli.migrate import apply_migrations, pending_migrations
    from server.cli.service import MediaService
    from server.runtime.processes import run_server, serve_workers

    with database(settings) as dsn:
        if migrate and settings.db.auto_migrate:
            apply_migrations(dsn)
        elif pending := pending_migrations(dsn):
            # Serving a schema older than the code turns every request into a 500.
            raise SchemaBehind(f"the database schema is behind ({', '.join(pending)} not "
                               "applied): run `media-store migrate` (or `python run.py "
                               "migrate`) first")
        if workers > 1:
            return serve_workers(settings, dsn, workers, MediaService())
        run_server(settings, dsn, MediaService())
        return 0


async def _with_store(dsn: str, settings: Settings, fn):
    from server.store.media import MediaStore
    from server.store.pool import create_pool
    pool = await create_pool(dsn, settings, admin=True)
    try:
        return await fn(MediaStore(pool, chunk_size=settings.store.chunk_bytes))
    finally:
        await pool.close()


def _migrated(settings: Settings, dsn: str) -> None:
    """Migrate first when allowed; otherwise refuse a schema behind the code."""
    from server.cli.migrate import apply_migrations, pending_migrations
    if settings.db.auto_migrate:
        apply_migrations(dsn)
    elif pending := pending_migrations(dsn):
        raise SchemaBehind(f"the database schema is behind ({', '.join(pending)} not "
                           "applied): run `python run.py migrate` first")


def _positive_int(text: str) -> int:
    # rollback drops tables: a count of 0 or below must not slip through as a slice
    # bound ([:-1] would roll back all but one migration).
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _parsed(parse):
    from server.hygiene.sizes import BadSize

    def check(text: str):
        try:
            return parse(text)
        except BadSize as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return check


def add_quota_options(p: argparse.ArgumentParser) -> None:
    """--quota-bytes (50M, 2G...), --quota-files, --uploads-per-minute; 'none' lifts
    one; absent leaves it as it is."""
    from server.hygiene.sizes import parse_count, parse_size
    unset = argparse.SUPPRESS
    p.add_argument("--quota-bytes", type=_parsed(parse_size), default=unset,
                   help="bytes the key's media may hold: 50M, 2G (powers of 1024) or none")
    p.add_argument("--quota-files", type=_parsed(parse_count), default=unset,
                   help="media the key may hold, or none")
    p.add_argument("--uploads-per-minute", type=_parsed(parse_count), default=unset,
                   help="uploads the key may start per minute, or none")


def _date(text: str):
    from datetime import datetime, timezone
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chat media kept in PostgreSQL")
    sub = parser.add_subparsers(dest="command")
    p_serve = sub.add_parser("serve", help="run the HTTP server (default)")
    p_serve.add_argument("--no-migrate", action="store_true",
                         help="do not apply migrations at start-up")
    for p in (parser, p_serve):
        p.add_argument("--workers", type=_positive_int, default=None,
                       help="server processes sharing the port (default MEDIA_WORKERS)")
    sub.add_parser("migrate", help="apply pending migrations")
    p_rb = sub.add_parser("rollback", help="roll back the last N migrations")
    p_rb.add_argument("count", type=_positive_int, nargs="?", default=1)
    sub.add_parser("reclaim", help="delete abandoned uploads, and content no media has "
                   "shown for MEDIA_ORPHAN_GRACE_SECONDS, now")
    sub.add_parser("create-message", help="insert a message; print its id")
    sub.add_parser("partition-chunks",
                   help="hash-partition the chunk table (docs/scaling.md; rewrites it)")
    p_keys = sub.add_parser("keys", help="API keys: create, list, revoke")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="create a key; print it (shown once)")
    p_create.add_argument("name")
    p_create.add_argument("--scope", choices=("read", "write", "admin"), default="write")
    p_quota = keys_sub.add_parser("set-quota", help="change a key's quotas and upload rate")
    p_quota.add_argument("name")
    for p in (p_create, p_quota):
        add_quota_options(p)
    keys_sub.add_parser("list", help="names, scopes, usage, quotas, last used")
    keys_sub.add_parser("revoke", help="revoke a key at once").add_argument("name")
    p_scan = sub.add_parser("scan", help="rescan stored content with clamd "
                            "(MEDIA_SCAN_CLAMD), quarantining what is found")
    p_scan.add_argument("--since", type=_date, default=None,
                        help="only media stored since this date (ISO 8601; default: all)")
    legacy_cli.add_parsers(sub)
    purge_cli.add_parser(sub)
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    from server.observability.logformat import configure
    configure(settings.server.log_level, settings.server.log_format)
    _sigterm_as_exit()

    from server.cli.migrate import apply_migrations, rollback_migrations
    command = args.command or "serve"
    try:
        if command == "serve":
            return serve(settings, migrate=not getattr(args, "no_migrate", False),
                         workers=args.workers or settings.server.workers)
        with database(settings) as dsn:
            if command == "migrate":
                applied = apply_migrations(dsn)
                print("applied: " + (", ".join(applied) if applied else "nothing, up to date"))
            elif command == "rollback":
                print("rolled back: " + ", ".join(rollback_migrations(dsn, args.count)))
            elif command == "reclaim":
                n = asyncio.run(_with_store(dsn, settings, lambda s: s.reclaim_stale_uploads(
                    settings.uploads.stale_seconds)))
                print(f"reclaimed {n} abandoned upload(s)")
                contents, freed = asyncio.run(_with_store(
                    dsn, settings, lambda s: s.reclaim_orphaned_contents(
                        settings.store.orphan_grace_seconds)))
                print(f"reclaimed {contents} content(s) no media shows ({freed} bytes)")
            elif command == "partition-chunks":
                from server.cli.migrate import PARTITIONING_DIR
                applied = apply_migrations(dsn, folder=PARTITIONING_DIR)
                print("applied: " + (", ".join(applied) if applied else
                                     "nothing, already partitioned"))
            elif command == "create-message":
                if settings.db.auto_migrate:
                    apply_migrations(dsn)
                print(asyncio.run(_with_store(dsn, settings, lambda s: s.create_message())))
            elif command == "keys":
                from server.cli.keys import keys_command
                if settings.db.auto_migrate:
                    apply_migrations(dsn)
                return keys_command(dsn, args, settings.db.admin_command_timeout)
            elif command == "purge":
                _migrated(settings, dsn)
                return purge_cli.run(args, settings, dsn)
            elif command == "scan":
                from server.cli.scan import scan_command
                _migrated(settings, dsn)
                return scan_command(dsn, settings, args.since)
            elif command in legacy_cli.COMMANDS:
                _migrated(settings, dsn)
                return legacy_cli.run(args, settings, dsn)
    except KeyboardInterrupt:
        return 130
    except SchemaBehind as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            return _database_error(e)
        print(f"cannot listen on {settings.server.host}:{settings.server.port}: {e.strerror}",
              file=sys.stderr)
        return 1
    except DATABASE_ERRORS as e:
        return _database_error(e)
    return 0


def _database_error(e: BaseException) -> int:
    # Unreachable server, wrong credentials, missing database, a migration lock held
    # too long: an operator's problem, told in one line, not a traceback.
    from server.errors import ServiceUnavailable
    if isinstance(e, ServiceUnavailable) and e.__cause__ is not None:
        e = e.__cause__   # the store's 503 for requests: what the database did is news
    print(f"database error: {e.__class__.__name__}: {redact(str(e).strip())}",
          file=sys.stderr)
    return 1


def _database_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    from yoyo.exceptions import LockTimeout

    from server.errors import ServiceUnavailable
    from server.store.pool import DATABASE_ERRORS as STORE_ERRORS
    return (OSError, psycopg.Error, *STORE_ERRORS, LockTimeout, ServiceUnavailable)


DATABASE_ERRORS = _database_errors()

