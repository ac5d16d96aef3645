"""import-legacy: the files of the legacy folder into the media store, nothing lost.

Each file goes through the same ingest as an upload (receive(): type from the bytes,
size limit, streamed in pieces, never whole in memory) and, given a ``Processing``,
the same media processing (in its thread pool): dimensions, duration, waveform and
previews. Without ``process`` that processing runs under a policy that keeps the bytes
(policy.keeping_bytes), so the stored copy's sha256 is the file's; with it, the file is
compressed and stripped as a new upload would be, and the map records both hashes:
the legacy file's (what the folder holds, what a re-run and cleanup compare against)
and the stored one's (what verify expects the chunks to hash to).

Idempotent by the legacy_media map (legacy name -> media id, sha256, size, mtime),
written in the same transaction that makes the media visible (and, with
``rewrite_urls``, that points its messages at the new route): a run killed at any
moment leaves each file either imported and recorded, or not imported at all (its
half-written upload is reclaimed by the janitor), so the next run continues.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import TextIO

import aiofiles

from server.errors import (EmptyFile, MediaError, PayloadTooLarge, ServiceUnavailable,
                           UnsupportedMediaType)
from server.http.media_types import SNIFF_BYTES, sniff
from server.hygiene.guard import IngestGuard
from server.ingest.receive import Limits, receive
from server.legacy import matching
from server.legacy.columns import UrlColumn, url_column
from server.legacy.files import PIECE, FileStat, list_folder, sha256_of
from server.legacy.lock import legacy_lock
from server.legacy.paths import resolve
from server.legacy.progress import Progress
from server.processing.pipeline import Processing
from server.processing.policy import Policy, keeping_bytes
from server.security.audit import AuditEntry
from server.security.signing import serve_path
from server.store.media import MediaStore
from server.store.pool import DATABASE_ERRORS, Connection
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

# One file's fate; also the manifest's last column.
IMPORTED, ALREADY, CHANGED, ORPHAN, FAILED, WOULD_IMPORT = (
    "imported", "already", "changed", "orphan", "failed", "would_import")


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    source: Path
    url_column: str = "media_url"
    url_prefix: str = "/uploads/media/"
    orphans_to: int | None = None
    dry_run: bool = False
    rewrite_urls: bool = False
    process: bool = False     # compress/strip as a new upload would (off: bytes kept)
    # clamd (MEDIA_SCAN_CLAMD, server/hygiene/scanning.py): each file is scanned as it
    # is stored, as an upload is; an infected one is a failed row naming the signature.
    scanner: object | None = None


@dataclasses.dataclass
class Row:
    name: str
    outcome: str
    size: int | None = None
    sha256: bytes | None = None
    media_id: int | None = None
    message_id: int | None = None
    reason: str = ""
    rewritten: int = 0
    stored_sha256: bytes | None = None   # differs from sha256 only when processed
    stored_size: int | None = None
    processed: bool = False


@dataclasses.dataclass
class ImportReport:
    rows: list[Row]
    missing: list[tuple[int, str]]     # (message id, legacy name it points at)
    dry_run: bool
    orphans: list[str] = dataclasses.field(default_factory=list)
    orphans_to: int | None = None

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.rows)

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing changed since it was imported."""
        return not any(r.outcome in (FAILED, CHANGED) for r in self.rows)

    def summary(self) -> list[str]:
        c = self.count
        lines = [f"{'would import' if self.dry_run else 'imported'}: "
                 f"{c(WOULD_IMPORT) if self.dry_run else c(IMPORTED)}",
                 f"already there: {c(ALREADY)}",
                 f"changed since imported: {c(CHANGED)}",
                 f"orphans (no message points at them): {len(self.orphans)}, "
                 + ("left alone" if self.orphans_to is None
                    else f"attached to message {self.orphans_to}"),
                 f"missing (messages pointing at no file): {len(self.missing)}",
                 f"failed: {c(FAILED)}"]
        lines += [f"  {r.name}: {r.reason}" for r in self.rows if r.outcome == FAILED]
        lines += [f"  changed: {r.name}" for r in self.rows if r.outcome == CHANGED]
        rewritten = sum(r.rewritten for r in self.rows)
        if rewritten:
            lines.append(f"messages pointed at the new route: {rewritten}")
        return lines


class FileChanged(Exception):
    """The file changed while it was being read."""


class RecordedMeanwhile(Exception):
    """Another run recorded the same legacy name first."""


class BytesRewritten(Exception):
    """Stored bytes differ from the file's although they were to be kept."""


def import_policy(policy: Policy, process: bool) -> Policy:
    """The processing an import runs: what a new upload gets with ``process``; else the
    same type policy, limits, facts and previews, with the bytes kept as they are."""
    return policy if process else keeping_bytes(policy)


async def import_legacy(store: MediaStore, opts: ImportOptions, limits: Limits,
                        processing: Processing | None = None, *,
                        out: TextIO | None = None, bar: bool | None = None) -> ImportReport:
    """Import (or, with ``dry_run``, plan) every file of ``opts.source``.

    ``processing``: what each file goes through, on a policy from ``import_policy``
    (None: type detection only, bytes kept, no facts or previews)."""
    if opts.process and (processing is None or processing.policy.keep_bytes
                         or not processing.policy.enabled):
        # Asked for compression and stripping: storing the files as they are instead
        # (and recording them as processed) would be a silent surprise.
        raise ValueError("--process needs media processing, and MEDIA_PROCESSING is off")
    prefix = matching.normalise_prefix(opts.url_prefix)
    listing = await list_folder(opts.source)
    # The lock is held for the whole run: two imports would race for the same files.
    async with legacy_lock(store) as conn:
        column = await url_column(conn, opts.url_column)
        if opts.orphans_to is not None and not await Q.message_exists.fetchval(
                conn, message_id=opts.orphans_to):
            raise ValueError(f"--orphans-to: message {opts.orphans_to} does not exist")
        by_name = await _message_refs(conn, column, prefix)
        imported = {r["legacy_name"]: r for r in await Q.legacy_map_all.fetch(conn)}
        # Imported once, then purged by retention: importing it again would undo that.
        purged = {r["legacy_name"] for r in await Q.purged_legacy_names.fetch(conn)}
        the_plan = matching.plan(listing.names, by_name, opts.orphans_to)

        rows = [Row(shown, FAILED, reason=why) for shown, why in listing.refused]
        progress = Progress(len(listing.names), "import", out=out, bar=bar)
        try:
            for name in listing.names:
                row = Row(name, ALREADY, reason="purged by retention") if name in purged \
                    else await _one(store, opts, limits, processing, column, name,
                                    the_plan, imported.get(name))
                rows.append(row)
                if row.outcome != ALREADY:
                    progress.line(_describe(row))
                progress.step()
        finally:
            progress.close()
    for message_id, name in the_plan.missing:
        progress.line(f"missing: message {message_id} points at {name}, not in the folder")
    return ImportReport(rows, the_plan.missing, opts.dry_run, the_plan.orphans,
                        opts.orphans_to)


def _describe(row: Row) -> str:
    if row.outcome == FAILED:
        return f"failed: {row.name}: {row.reason}"
    if row.outcome == IMPORTED:
        return f"imported: {row.name} -> media {row.media_id} (message {row.message_id})"
    if row.outcome == WOULD_IMPORT:
        return f"would import: {row.name} (message {row.message_id})"
    if row.outcome == CHANGED:
        return f"changed since imported: {row.name} (media {row.media_id})"
    return f"{row.outcome}: {row.name}"


async def _message_refs(conn: Connection, column: UrlColumn,
                        prefix: str) -> dict[str, list[matching.Ref]]:
    # Streamed through a cursor: the messages table may hold millions of rows.
    st = column.bind(Q.legacy_message_refs)
    refs: list[matching.Ref] = []
    async with conn.transaction(readonly=True):
        async for r in conn.cursor(st.sql, *st.args({"needle": prefix.lstrip("/")}),
                                   prefetch=2000):
            refs.append((r["id"], r["url"]))
    return matching.refs_by_name(refs, prefix)


async def _one(store: MediaStore, opts: ImportOptions, limits: Limits,
               processing: Processing | None, column: UrlColumn, name: str,
               the_plan: matching.Plan, known) -> Row:
    path = resolve(opts.source, name)
    owner = the_plan.owners.get(name)
    refs = the_plan.referrers.get(name, [])
    try:
        if path is None:
            raise FileNotFoundError(f"{name} vanished or left the folder")
        if known is not None:
            return await _known(store, opts, column, name, path, known, refs)
        if owner is None:
            return Row(name, ORPHAN, size=FileStat.of(path).size)
        if opts.dry_run:
            return await _dry(name, path, owner, limits, processing)
        return await _import(store, opts, limits, processing, column, name, path,
                             owner, refs)
    except ServiceUnavailable:
        raise   # the database is gone: nothing else will work either
    except RecordedMeanwhile:
        return Row(name, ALREADY, reason="imported by another run meanwhile")
    except (MediaError, OSError, FileChanged, BytesRewritten, *DATABASE_ERRORS) as e:
        return Row(name, FAILED, message_id=owner, reason=_reason(e))


def _reason(e: BaseException) -> str:
    if isinstance(e, MediaError):
        return f"{e.code}: {e.message}"
    if isinstance(e, FileChanged):
        return "the file changed while it was read; run again"
    if isinstance(e, BytesRewritten):
        return "processing changed the bytes although they were to be kept (a bug)"
    if isinstance(e, OSError):
        return f"unreadable: {e.strerror or e}"
    return f"database refused it: {e.__class__.__name__}: {e}"


async def _known(store: MediaStore, opts: ImportOptions, column: UrlColumn, name: str,
                 path: Path, known, refs: list[matching.Ref]) -> Row:
    st = FileStat.of(path)
    row = Row(name, ALREADY, size=known["file_size"], sha256=known["sha256"],
              media_id=known["media_id"], stored_sha256=known["stored_sha256"],
              processed=known["processed"])
    if (st.size, st.mtime) != (known["file_size"], known["file_mtime"]):
        # Touched since: only its content says whether it changed, compared with the
        # legacy file's own sha256 (processed or not, the stored one is another matter).
        sha, _ = await sha256_of(path)
        if sha != known["sha256"]:
            row.outcome = CHANGED
            return row
    if opts.rewrite_urls and refs and not opts.dry_run:
        # Imported by an earlier run without --rewrite-urls: point its messages now.
        async with store.connection() as conn, conn.transaction():
            row.rewritten = await _rewrite(conn, column, known["media_id"], refs)
    return row


async def _dry(name: str, path: Path, owner: int, limits: Limits,
               processing: Processing | None) -> Row:
    # What the import would refuse, found from the same first bytes it would sniff,
    # by the same type policy and limits. (What only decoding finds, a truncated or
    # oversized image, shows in the real run.)
    st = FileStat.of(path)
    async with aiofiles.open(path, "rb") as f:
        head = await f.read(SNIFF_BYTES)
    row = Row(name, WOULD_IMPORT, size=st.size, message_id=owner)
    limit = limits.max_bytes
    try:
        if not head:
            raise EmptyFile()
        if processing is not None:
            limit = processing.limit(processing.admit(head, complete=st.size <= len(head)),
                                     limit)
        elif sniff(head) is None:
            raise UnsupportedMediaType("type not accepted")
        if st.size > limit:
            raise PayloadTooLarge("the file is too large")
    except MediaError as e:
        row.outcome, row.reason = FAILED, _reason(e)
    return row


async def _import(store: MediaStore, opts: ImportOptions, limits: Limits,
                  processing: Processing | None, column: UrlColumn, name: str,
                  path: Path, owner: int, refs: list[matching.Ref]) -> Row:
    before = FileStat.of(path)
    h = hashlib.sha256()
    async with aiofiles.open(path, "rb") as f:
        async def read() -> bytes:
            piece = await f.read(PIECE)
            h.update(piece)
            return piece
        guard = IngestGuard(store, scanner=opts.scanner) if opts.scanner else None
        upload = await receive(store, read, name.rsplit("/", 1)[-1], limits, processing,
                               guard=guard)
    row = Row(name, IMPORTED, size=upload.size, sha256=h.digest(), message_id=owner,
              processed=opts.process)

    async def also(conn: Connection, rec) -> None:
        row.stored_sha256, row.stored_size = rec.sha256, rec.file_size
        if not opts.process and rec.sha256 != row.sha256:
            # Cannot happen by design (the policy keeps the bytes); if it ever did,
            # the map's constraint would refuse it too. Say which file, not a constraint.
            raise BytesRewritten()
        got = await Q.legacy_record.fetchval(
            conn, legacy_name=name, media_id=rec.id, sha256=row.sha256,
            file_size=row.size, file_mtime=before.mtime, processed=opts.process,
            stored_sha256=rec.sha256)
        if got is None:
            raise RecordedMeanwhile()
        if opts.rewrite_urls:
            row.rewritten = await _rewrite(conn, column, rec.id, refs)
        # The audit row of this import, committed with it or not at all.
        await AuditEntry(actor="cli:import-legacy", action="legacy_import",
                         media_id=rec.id, message_id=owner).write(conn)

    try:
        if FileStat.of(path) != before or row.size != before.size:
            raise FileChanged()
        rec = await upload.finish(owner, then=also)
    except BaseException:
        await upload.abort()
        raise
    row.media_id = rec.id
    return row


async def _rewrite(conn: Connection, column: UrlColumn, media_id: int,
                   refs: list[matching.Ref]) -> int:
    st = column.bind(Q.legacy_rewrite_url)
    n = 0
    for message_id, old in refs:
        status = await st.execute(conn, id=message_id, old_url=old,
                                  new_url=serve_path(media_id))
        n += status == "UPDATE 1"
    return n
