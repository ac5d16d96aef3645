"""``media-store purge --older-than AGE [--type TYPE] [--dry-run]``: retention by hand.

The same batches as the retention worker (server/store/purge.py), audited as
``cli:<user>``; a progress bar on a terminal, then what went (count and bytes, by
type). ``--dry-run`` reads only and says what would go. Exit codes: 0 done (also when
nothing was old enough), 1 the database failed midway (the batches committed before
stay purged; run it again to go on), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import asyncio

from server.cli.keys import _actor
from server.cli.legacy import _store
from server.http.media_types import MEDIA_TYPES
from server.legacy.progress import Progress
from server.retention.rules import Selection, format_age, parse_age
from server.settings import Settings


def _age(text: str):
    try:
        return parse_age(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub) -> None:
    """Register ``purge`` on main's subparsers."""
    p = sub.add_parser("purge", help="remove media older than an age now (retention)")
    p.add_argument("--older-than", dest="older_than", type=_age, required=True,
                   metavar="AGE", help="created longer ago than this: 365d, 48h, 2w")
    p.add_argument("--type", dest="media_type", choices=MEDIA_TYPES,
                   help="only media of this type (default: every type)")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would go (count, bytes); change nothing")


def _selection(args: argparse.Namespace) -> Selection:
    label = f"purge --older-than {format_age(args.older_than)}"
    if args.media_type:
        label += f" --type {args.media_type}"
    return Selection(args.older_than, media_type=args.media_type, label=label)


def _summary(verb: str, found) -> list[str]:
    lines = [f"{verb}: {found.files} media, {found.bytes} bytes ({found.bytes / 1024**2:.1f} MiB)"]
    lines += [f"  {t}: {files} media, {nbytes} bytes"
              for t, (files, nbytes) in sorted(found.by_type.items())]
    return lines


async def _purge(args: argparse.Namespace, settings: Settings, dsn: str) -> int:
    from server.store.purge import candidates, purge
    sel = _selection(args)
    async with _store(dsn, settings) as store:
        would = await candidates(store, sel)
        if args.dry_run:
            print("\n".join(_summary("would purge", would)))
            return 0
        progress = Progress(would.files, "purge")
        try:
            went = await purge(store, sel, _actor(), on_batch=lambda b: progress.step(b.files))
        finally:
            progress.close()
    print("\n".join(_summary("purged", went)))
    return 0


def run(args: argparse.Namespace, settings: Settings, dsn: str) -> int:
    """Run ``purge`` against a migrated database; the exit code."""
    return asyncio.run(_purge(args, settings, dsn))
