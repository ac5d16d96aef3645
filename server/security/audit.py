"""The audit log: who did what, when, from where, and how it ended.

An entry is a value; whoever makes the change writes it on the connection and in the
transaction of that change (the store's ``Upload.finish`` and ``delete`` take it), so
a change that rolled back never leaves a success row. When the action fails,
:func:`audited` writes the entry on its own with the failure as outcome.

Refusals without a valid credential (a made-up key, a tampered token or signature)
cost a client nothing to send, so they are *counted*, not listed
(:func:`record_refusal`): one row per minute, client address, actor and outcome, with
a ``count``, in which every instance and worker process counts (refusals.py says how).
Rows older than MEDIA_AUDIT_RETENTION_DAYS are deleted by the janitor
(:func:`prune`), a bounded batch at a time.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime

from aiohttp import web

from server.errors import MediaError
from server.observability.requestid import REQUEST_ID
from server.security.access import PRINCIPAL
from server.security.forwarded import client_address
from server.security.refusals import REFUSALS
from server.settings import SETTINGS
from server.store.media import STORE
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)



@dataclasses.dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    media_id: int | None = None
    message_id: int | None = None
    client_addr: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    outcome: str = "ok"

    async def write(self, conn, **changes) -> None:
        """INSERT this entry (with ``changes``) on ``conn``, inside the caller's
        transaction when there is one."""
        entry = dataclasses.replace(self, **changes)
        await Q.insert_audit.execute(conn, **dataclasses.asdict(entry))


def client_addr(request: web.Request) -> str | None:
    settings = request.app[SETTINGS]
    return client_address(request.remote, request.headers.get("X-Forwarded-For"),
                          settings.security.trusted_proxies)


def entry_for(request: web.Request, action: str, *, actor: str | None = None,
              **fields) -> AuditEntry:
    """An entry for ``action`` done by this request's principal."""
    if actor is None:
        principal = request.get(PRINCIPAL)
        actor = principal.name if principal is not None else "anonymous"
    agent = request.headers.get("User-Agent")
    return AuditEntry(actor=actor[:120], action=action, client_addr=client_addr(request),
                      user_agent=agent[:300] if agent else None,
                      request_id=request.get(REQUEST_ID), **fields)


def outcome_of(error: BaseException) -> str:
    if isinstance(error, MediaError):
        # An infection's signature is what its audit row must name.
        signature = error.fields.get("signature")
        return f"{error.code}: {signature}" if signature else error.code
    if isinstance(error, asyncio.CancelledError):
        return "client_gone"
    return f"error: {error.__class__.__name__}"


async def record(request: web.Request, entry: AuditEntry) -> None:
    """Write ``entry`` on its own. Best effort: a failure to audit a failure is logged,
    never raised over the error being reported."""
    async def write() -> None:
        async with request.app[STORE].connection() as conn:
            await entry.write(conn)
    try:
        await asyncio.shield(write())
    except Exception as e:
        # No stack trace: the usual cause is the database going away (shutdown).
        log.warning("could not write audit entry %s: %s: %s", entry, e.__class__.__name__, e)


async def record_refusal(request: web.Request, entry: AuditEntry) -> None:
    """Count ``entry`` (a refusal without a valid credential) into its minute's row
    (server/security/refusals.py). Its media and message ids are dropped: varying them
    must not make a row per request."""
    await request.app[REFUSALS].count(entry)


PRUNE_BATCH = 1000        # rows per DELETE: short statements, short locks, small WAL bursts
PRUNE_MAX_BATCHES = 100   # per janitor run: a backlog drains over several runs


async def prune(store, days: int, *, batch: int = PRUNE_BATCH,
                max_batches: int = PRUNE_MAX_BATCHES) -> int:
    """Delete audit rows older than ``days``, ``batch`` rows per statement, until a
    batch comes back short or ``max_batches`` ran; how many rows went."""
    removed = 0
    for _ in range(max_batches):
        async with store.connection() as conn:
            n = await Q.prune_audit.fetchval(conn, days=days, batch=batch)
        removed += n
        if n < batch:
            break
    return removed


async def search(store, *, media_id: int | None, action: str | None,
                 since: datetime | None, limit: int, actor: str | None = None,
                 after: tuple[datetime, int] | None = None) -> list[dict]:
    """Entries matching every filter given, newest first; after ``after`` (the
    previous page's last (at, id)) when given."""
    after_at, after_id = after or (None, None)
    async with store.connection() as conn:
        rows = await Q.search_audit.fetch(conn, media_id=media_id, action=action,
                                          actor=actor, since=since, after_at=after_at,
                                          after_id=after_id, limit=limit)
    return [dict(r) for r in rows]


class Audit:
    """The entry of one action in progress: the handler notes what it learns (the
    message id...), the store writes it with the change (``write``); on failure
    :func:`audited` writes it with the failure instead."""

    def __init__(self, entry: AuditEntry):
        self.entry = entry

    def note(self, **fields) -> None:
        self.entry = dataclasses.replace(self.entry, **fields)

    async def write(self, conn, **changes) -> None:
        self.note(**changes)
        await self.entry.write(conn)


@contextlib.asynccontextmanager
async def audited(request: web.Request, action: str, **fields):
    """Yield an :class:`Audit` for ``action``, to be written with the change; if the
    block fails, it is written on its own with the failure as outcome."""
    audit = Audit(entry_for(request, action, **fields))
    try:
        yield audit
    except BaseException as e:
        await record(request, dataclasses.replace(audit.entry, outcome=outcome_of(e)[:200]))
        raise
