"""The legacy-folder commands: import-legacy, verify, cleanup-legacy, export, stats.

Each returns an exit code: 0 when everything went well, 1 when something failed or did
not match (named in the output), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from server.settings import Settings

COMMANDS = ("import-legacy", "verify", "cleanup-legacy", "export", "stats")


def _message_id(text: str) -> int:
    from server.http.params import parse_id
    value = parse_id(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a message id: {text!r}")
    return value


def add_parsers(sub) -> None:
    """Register the commands on main's subparsers."""
    p = sub.add_parser("import-legacy", help="import the legacy /uploads/media folder")
    p.add_argument("--from", dest="source", type=Path, required=True,
                   help="the legacy folder")
    p.add_argument("--url-column", default="media_url",
                   help="messages column holding the old URL (default media_url)")
    p.add_argument("--url-prefix", default="/uploads/media/",
                   help="URL path of the old folder (default /uploads/media/)")
    p.add_argument("--orphans-to", type=_message_id, metavar="MESSAGE_ID",
                   help="attach files no message points at to this message")
    p.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
    p.add_argument("--rewrite-urls", action="store_true",
                   help="point each message's column at the new route as its file is imported")
    p.add_argument("--process", action="store_true",
                   help="compress and strip metadata as a new upload would (default: "
                        "keep the file's bytes, sha256 equal to the file's; dimensions, "
                        "duration and previews either way)")
    p.add_argument("--manifest", type=Path, metavar="FILE",
                   help="write a CSV: legacy name, size, sha256, media id")


    p = sub.add_parser("verify", help="read every stored file back and check it")
    p.add_argument("--from", dest="source", type=Path,
                   help="also compare each imported file with its legacy copy here")
    p.add_argument("--media", type=_message_id, metavar="ID", help="check one media only")

    p = sub.add_parser("cleanup-legacy",
                       help="delete legacy files whose database copy verifies (dry run "
                            "unless --yes)")
    p.add_argument("--from", dest="source", type=Path, required=True,
                   help="the legacy folder")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.add_argument("--archive", type=Path, metavar="FILE.tar.gz",
                   help="first write the files about to be deleted into this archive")

    p = sub.add_parser("export", help="write stored media back out as files")
    p.add_argument("--to", type=Path, required=True, help="folder to write into")
    p.add_argument("--message", type=_message_id, metavar="ID",
                   help="only this message's media")
    p.add_argument("--since", type=_date, metavar="DATE",
                   help="only media stored since (ISO 8601 date or date and time)")
    p.add_argument("--manifest", type=Path, metavar="FILE",
                   help="where the CSV manifest goes (default DIR/manifest.csv)")

    p = sub.add_parser("stats", help="what the store holds; the move's progress")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.add_argument("--from", dest="source", type=Path,
                   help="legacy folder, to count files left (default MEDIA_LEGACY_DIR)")


def _date(text: str):
    from datetime import datetime, timezone
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@contextlib.asynccontextmanager
async def _store(dsn: str, settings: Settings) -> AsyncIterator:
    from server.store.media import MediaStore
    from server.store.pool import create_pool
    pool = await create_pool(dsn, settings, admin=True)
    try:
        yield MediaStore(pool, chunk_size=settings.store.chunk_bytes,
                         read_ahead=settings.store.read_ahead_chunks,
                         acquire_timeout=settings.db.pool_acquire_timeout)
    finally:
        await pool.close()


def run(args: argparse.Namespace, settings: Settings, dsn: str) -> int:
    """Run one of COMMANDS against a migrated database."""
    handler = {"import-legacy": _import, "verify": _verify,
               "cleanup-legacy": _cleanup, "export": _export,
               "stats": _stats}[args.command]
    try:
        return asyncio.run(handler(args, settings, dsn))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from server.errors import ServiceUnavailable
        from server.legacy.lock import LegacyBusy
        if isinstance(e, (LegacyBusy, ServiceUnavailable)):
            # Another run holds the lock, or the database went away mid-run: say so
            # in one line; a re-run continues where this one stopped.
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise


async def _import(args, settings: Settings, dsn: str) -> int:
    from server.hygiene.guard import scanner_from
    from server.ingest.receive import Limits
    from server.legacy.importer import ImportOptions, import_legacy, import_policy
    from server.legacy.manifest import IMPORT_HEADER, write_manifest
    from server.processing.pipeline import Processing
    from server.processing.policy import Policy
    opts = ImportOptions(source=args.source, url_column=args.url_column,
                         url_prefix=args.url_prefix, orphans_to=args.orphans_to,
                         dry_run=args.dry_run, rewrite_urls=args.rewrite_urls,
                         process=args.process, scanner=scanner_from(settings))
    limits = Limits(settings.uploads.max_bytes, settings.uploads.idle_timeout)
    # The CPU work runs in this pool (MEDIA_PROCESS_CONCURRENCY worker processes), as
    # the server's does; one file at a time, so one worker is busy.
    processing = Processing(import_policy(Policy.from_settings(settings), args.process))
    try:
        async with _store(dsn, settings) as store:
            report = await import_legacy(store, opts, limits, processing)
    finally:
        processing.close()
    if args.manifest:
        imported = ((r.name, r.size, _hex(r.sha256), r.media_id, r.message_id, r.outcome,
                     _hex(r.stored_sha256), r.stored_size,
                     "" if r.stored_sha256 is None else str(r.processed).lower())
                    for r in report.rows)
        # Messages pointing at no file: the record says what could not be backed up.
        missing = ((name, None, None, None, message_id, "missing")
                   for message_id, name in report.missing)
        write_manifest(args.manifest, itertools.chain(imported, missing),
                       header=IMPORT_HEADER)
    print("\n".join(report.summary()))
    return 0 if report.ok else 1


def _hex(digest: bytes | None) -> str | None:
    return digest.hex() if digest else None


async def _verify(args, settings: Settings, dsn: str) -> int:
    from server.legacy.verify import verify
    async with _store(dsn, settings) as store:
        checked, problems = await verify(store, media_id=args.media, source=args.source)
    print(f"checked: {checked}, mismatches: {len(problems)}")
    if problems:
        ids = sorted({p.media_id for p in problems if p.media_id is not None})
        print("media with problems: " + ", ".join(map(str, ids)))
    return 1 if problems else 0


async def _export(args, settings: Settings, dsn: str) -> int:
    from server.legacy.export import FAILED, SAME, WRITTEN, export
    async with _store(dsn, settings) as store:
        manifest = args.manifest or args.to / "manifest.csv"
        results = await export(store, args.to, message_id=args.message, since=args.since,
                               manifest=manifest)
    count = {o: sum(r.outcome == o for r in results) for o in (WRITTEN, SAME, FAILED)}
    print(f"exported: {count[WRITTEN]}, already there: {count[SAME]}, "
          f"failed: {count[FAILED]}; manifest: {manifest}")
    return 1 if count[FAILED] else 0


async def _stats(args, settings: Settings, dsn: str) -> int:
    import json

    from server.legacy.stats import collect, render
    async with _store(dsn, settings) as store:
        stats = await collect(store, args.source or settings.legacy.dir)
    print(json.dumps(stats, indent=2) if args.json else "\n".join(render(stats)))
    return 0


async def _cleanup(args, settings: Settings, dsn: str) -> int:
    from server.legacy.cleanup import DELETED, KEPT, WOULD_DELETE, cleanup
    async with _store(dsn, settings) as store:
        decisions = await cleanup(store, args.source, yes=args.yes, archive=args.archive)
    count = {o: sum(d.outcome == o for d in decisions) for o in (DELETED, WOULD_DELETE, KEPT)}
    if args.yes:
        print(f"deleted: {count[DELETED]}, kept: {count[KEPT]}")
    else:
        print(f"would delete: {count[WOULD_DELETE]}, kept: {count[KEPT]} "
              "(dry run: nothing deleted; add --yes)")
    return 0
