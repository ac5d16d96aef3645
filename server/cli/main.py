"""The command line: serve and the admin commands.

Installed, the console script ``media-store``; from a checkout, ``python run.py``:

    media-store                serve (migrating first unless MEDIA_AUTO_MIGRATE=false)
    media-store serve --no-migrate
    media-store migrate        apply pending migrations and exit
    media-store rollback N     roll back the last N migrations
    media-store reclaim        delete abandoned uploads now (what the janitor does)
    media-store create-message insert a message to attach media to; prints its id
    media-store partition-chunks   hash-partition media_chunks (docs/scaling.md)
    media-store distribute [--dry-run]   spread the tables over Citus (docs/scaling.md)
    media-store keys create NAME [--scope read|write|admin]   prints the new API key
    media-store keys list | keys revoke NAME
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
from server.secret import redact
from server.settings import Settings, SettingsError, load_settings

log = logging.getLogger("media")


class SchemaBehind(Exception):
    """Serving was asked for without migrating, and migrations are pending."""


@contextlib.contextmanager
def database(settings: Settings):
    """Yield a DSN: DATABASE_URL, or the embedded server, stopped when the block ends."""
    if settings.database_url:
        yield settings.database_url.reveal()
        return
    from server.cli import embedded_pg
    server = embedded_pg.start(settings.data_dir)
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
        if migrate and settings.auto_migrate:
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
        return await fn(MediaStore(pool, chunk_size=settings.chunk_bytes))
    finally:
        await pool.close()


def _migrated(settings: Settings, dsn: str) -> None:
    """Migrate first when allowed; otherwise refuse a schema behind the code."""
    from server.cli.migrate import apply_migrations, pending_migrations
    if settings.auto_migrate:
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
    sub.add_parser("reclaim", help="delete abandoned uploads now")
    sub.add_parser("create-message", help="insert a message; print its id")
    sub.add_parser("partition-chunks",
                   help="hash-partition media_chunks (docs/scaling.md; rewrites the table)")
    p_dist = sub.add_parser("distribute", help="on a Citus coordinator: distribute the "
                            "store's tables (docs/scaling.md)")
    p_dist.add_argument("--dry-run", action="store_true",
                        help="print the SQL of the steps still to apply; change nothing")
    p_keys = sub.add_parser("keys", help="API keys: create, list, revoke")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="create a key; print it (shown once)")
    p_create.add_argument("name")
    p_create.add_argument("--scope", choices=("read", "write", "admin"), default="write")
    keys_sub.add_parser("list", help="names, scopes, created, last used (never the key)")
    keys_sub.add_parser("revoke", help="revoke a key at once").add_argument("name")
    legacy_cli.add_parsers(sub)
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    from server.observability.logformat import configure
    configure(settings.log_level, settings.log_format)
    _sigterm_as_exit()

    from server.cli.migrate import apply_migrations, rollback_migrations
    command = args.command or "serve"
    try:
        if command == "serve":
            return serve(settings, migrate=not getattr(args, "no_migrate", False),
                         workers=args.workers or settings.workers)
        with database(settings) as dsn:
            if command == "migrate":
                applied = apply_migrations(dsn)
                print("applied: " + (", ".join(applied) if applied else "nothing, up to date"))
            elif command == "rollback":
                print("rolled back: " + ", ".join(rollback_migrations(dsn, args.count)))
            elif command == "reclaim":
                n = asyncio.run(_with_store(dsn, settings, lambda s: s.reclaim_stale_uploads(
                    settings.upload_stale_seconds)))
                print(f"reclaimed {n} abandoned upload(s)")
            elif command == "partition-chunks":
                from server.cli.migrate import PARTITIONING_DIR
                applied = apply_migrations(dsn, folder=PARTITIONING_DIR)
                print("applied: " + (", ".join(applied) if applied else
                                     "nothing, already partitioned"))
            elif command == "distribute":
                from server.cli.distribute import distribute_command
                from server.cli.migrate import pending_migrations
                if not args.dry_run:
                    _migrated(settings, dsn)
                elif pending := pending_migrations(dsn):   # a dry run changes nothing
                    raise SchemaBehind(f"the database schema is behind ({', '.join(pending)}"
                                       " not applied): run `media-store migrate` first")
                return distribute_command(dsn, args.dry_run)
            elif command == "create-message":
                if settings.auto_migrate:
                    apply_migrations(dsn)
                print(asyncio.run(_with_store(dsn, settings, lambda s: s.create_message())))
            elif command == "keys":
                from server.cli.keys import keys_command
                if settings.auto_migrate:
                    apply_migrations(dsn)
                return keys_command(dsn, args, settings.db_admin_command_timeout)
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
        print(f"cannot listen on {settings.host}:{settings.port}: {e.strerror}",
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
    import asyncpg
    import psycopg
    from yoyo.exceptions import LockTimeout

    from server.errors import ServiceUnavailable
    return (OSError, psycopg.Error, asyncpg.PostgresError, asyncpg.InterfaceError,
            LockTimeout, ServiceUnavailable)


DATABASE_ERRORS = _database_errors()

