"""The Z-API outbox: deliveries as rows, sent by workers in every server instance.

The contract, and why each part is there:

- ``enqueue`` commits a row ('queued') before any request is made, so a send asked for
  is never lost to a crash or restart.
- A worker *claims* due rows in one short transaction (FOR UPDATE SKIP LOCKED, under an
  advisory lock that caps the claims alive at ZAPI_MAX_CONCURRENCY across every
  instance): state 'sending', an attempt counted, a fresh claim token and a lease of
  ZAPI_LEASE_SECONDS. The request is made after that transaction, holding no
  connection. Two workers never hold the same row, so no row is posted twice.
- Just before the request, ``posted_at`` is committed (guarded by the token). Every
  later write about the row is guarded by the token too, so a worker whose claim was
  recovered can neither post nor overwrite a newer claim's outcome.
- The outcome: 'sent' with Z-API's ids (and the media's zapi_sent/zapi_message_id:
  true while at least one delivery of the media is 'sent'; a DeliveryCallback error
  that fails the last one makes it false again, see sql/zapi.sql);
  queued again with exponential backoff and jitter for what retrying can fix
  (connection refused, 5xx) until ZAPI_MAX_ATTEMPTS, then 'failed'; 'failed' at once
  for a refusal (4xx, a 2xx without messageId); 'unknown' when the request may have
  reached Z-API and no answer came (a timeout, a cut connection). Z-API has no
  idempotency key, so 'unknown' is not posted again unless ZAPI_RETRY_UNKNOWN.
- A 429 queues the row again without spending an attempt and pauses this instance's
  claiming for Retry-After (or the backoff).
- A crashed instance's claims are recovered by any instance once their lease expires,
  or sooner, once the instance has stopped beating in media_instances for
  MEDIA_INSTANCE_DEAD_SECONDS (server/workers/instances.py). Without ``posted_at``
  the request provably never left and the row is queued again; with it the request
  may have gone out, so the row becomes 'unknown' (or queued, with ZAPI_RETRY_UNKNOWN).
  The gap between committing ``posted_at`` and the request leaving errs on the side
  of 'unknown', never of a duplicate.
- On a clean shutdown, claims not yet posted are released at once and requests in
  flight get a short grace; a request cut by the shutdown makes its row 'unknown'.
"""
from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import PurePosixPath
from typing import Any

import asyncpg
from aiohttp import web

from server.errors import DeliveryNotFound, MediaNotFound, ServiceUnavailable
from server.security.audit import AuditEntry
from server.settings import Settings
from server.store.media import MediaRecord, MediaStore
from server.store.sqlfiles import Q
from server.zapi.client import Outcome, ZapiClient, base64_length, build_request

log = logging.getLogger(__name__)

MAX_BACKOFF = 900.0          # 15 min: beyond this a retry is as good as a new send
POLL_SECONDS = 1.0           # how often an idle worker looks for due rows
SHUTDOWN_GRACE = 5.0         # requests in flight at shutdown get this long to finish
RECORD_TRIES = 5             # writing an outcome, one second apart (within the lease)


def backoff(attempt: int, base: float, rand: float) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry): base * 2^(n-1),
    with ±50% jitter from ``rand`` in [0, 1), capped at MAX_BACKOFF (pure)."""
    delay = min(MAX_BACKOFF, base * 2 ** max(0, attempt - 1))
    return delay * (0.5 + rand)


class Outbox:
    """Deliveries: the rows, and the loop that sends them (``run``)."""

    def __init__(self, store: MediaStore, settings: Settings, client: ZapiClient | None, *,
                 rand: Callable[[], float] = random.random, poll_seconds: float = POLL_SECONDS):
        self.store = store
        self.settings = settings
        self.client = client
        self._rand = rand
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()
        self._paused_until = 0.0
        self.on_outcome: Callable[[int, str], None] | None = None   # metrics, tests
        # ZAPI_MEDIA_MODE=url: the address Z-API downloads a media from (a signed URL
        # when access control requires one); set by server/workers/outbox.py.
        self.media_url: Callable[[int], str] | None = None

    # -- the rows -----------------------------------------------------------------

    async def enqueue(self, media_id: int, phone: str, caption: str | None,
                      reply_to: str | None, audit=None) -> dict[str, Any]:
        """Commit a queued delivery of complete media (and ``audit``, an audit entry,
        in the same transaction); MediaNotFound otherwise."""
        async with self.store.connection() as conn, conn.transaction():
            row = await Q.create_delivery.fetchrow(conn, media_id=media_id, phone=phone,
                                                   caption=caption, reply_to=reply_to)
            if row is not None and audit is not None:
                await audit.write(conn, media_id=media_id)
        if row is None:
            raise MediaNotFound()
        self._wake.set()
        return dict(row)

    async def get(self, delivery_id: int) -> dict[str, Any]:
        async with self.store.connection() as conn:
            row = await Q.get_delivery.fetchrow(conn, id=delivery_id)
        if row is None:
            raise DeliveryNotFound()
        return dict(row)

    async def list_for_media(self, media_id: int) -> list[dict[str, Any]]:
        async with self.store.connection() as conn:
            return [dict(r) for r in await Q.list_media_deliveries.fetch(conn, media_id=media_id)]

    async def depth(self) -> dict[str, int]:
        """Deliveries waiting (queued) and in flight (sending), for /metrics."""
        async with self.store.connection() as conn:
            rows = await Q.outbox_depth.fetch(conn)
        found = {r["state"]: r["deliveries"] for r in rows}
        return {state: found.get(state, 0) for state in ("queued", "sending")}

    # -- what the webhooks report ----------------------------------------------------

    async def callback_failed(self, zaap_id: str | None, message_id: str | None,
                              error: str) -> int:
        """DeliveryCallback with an error: the delivery failed after Z-API took it, and
        its media's zapi_sent stays true only while another delivery of it is sent
        (sql/zapi.sql says what zapi_sent means), in the same transaction."""
        async with self.store.connection() as conn, conn.transaction():
            rows = await Q.delivery_callback_failed.fetch(
                conn, zaap_id=zaap_id, zapi_message_id=message_id, error=error)
            for media_id in sorted({r["media_id"] for r in rows}):
                await Q.media_lock_for_sync.fetch(conn, media_id=media_id)
                await Q.media_zapi_sent_sync.fetch(conn, media_id=media_id)
        return len(rows)

    async def status_changed(self, ids: list[str], status: str, at) -> int:
        """MessageStatusCallback: the furthest WhatsApp status, with its time."""
        async with self.store.connection() as conn:
            rows = await Q.delivery_status.fetch(conn, ids=ids, status=status, status_at=at)
        return len(rows)

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and send until cancelled; a failed round is logged and retried."""
        try:
            while True:
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("outbox round failed; will retry", exc_info=True)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self._stop_in_flight()

    async def run_once(self) -> int:
        """One round: recover expired claims, claim what is due, start sending it.
        Returns how many rows were claimed."""
        async with self.store.connection() as conn:
            for row in await Q.recover_expired_claims.fetch(
                    conn, retry_unknown=self.settings.zapi_retry_unknown,
                    dead_seconds=float(self.settings.instance_dead_seconds)):
                log.warning("delivery %s: claim expired, now %s", row["id"], row["state"])
        loop = asyncio.get_running_loop()
        if loop.time() < self._paused_until:
            return 0
        async with self.store.connection() as conn:
            async with conn.transaction():
                await Q.outbox_claim_lock.fetchval(conn)
                claimed = await Q.claim_deliveries.fetch(
                    conn, max_in_flight=self.settings.zapi_max_concurrency,
                    instance_id=self.store.instance_id,
                    lease_seconds=float(self.settings.zapi_lease_seconds))
        for row in claimed:
            task = asyncio.create_task(self._send(dict(row)), name=f"zapi:{row['id']}")
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._wake.set()   # a slot is free: look again now rather than at the next poll
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    async def _stop_in_flight(self) -> None:
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(self._in_flight, timeout=SHUTDOWN_GRACE)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- one delivery ---------------------------------------------------------------

    async def _send(self, row: dict[str, Any]) -> None:
        token: uuid.UUID = row["claim_token"]
        posted = False
        try:
            try:
                rec = await self.store.stat(row["media_id"])
            except MediaNotFound:
                # Deleted meanwhile: the cascade took the row too, nothing to record.
                return
            req, body, length = self._request(rec, row)
            async with self.store.connection() as conn:
                if await Q.mark_posted.fetchval(conn, id=row["id"], claim_token=token) is None:
                    log.warning("delivery %s: claim lost before posting; not sent", row["id"])
                    return
            posted = True
            broken: list[BaseException] = []
            outcome = await self.client.post(req.endpoint, _guard(body, broken), length)
            if broken:
                # Our own read of the media failed mid-body: Z-API got a truncated
                # request (Content-Length unmet) and cannot have queued it.
                outcome = Outcome("retry", "reading the media failed: "
                                  f"{broken[0].__class__.__name__}")
            await self._record_surely(row, outcome)
        except asyncio.CancelledError:
            await asyncio.shield(self._interrupted(row, posted))
            raise

    def _request(self, rec: MediaRecord, row: dict[str, Any]):
        s = self.settings
        url = None
        if s.zapi_media_mode == "url":
            path = (self.media_url(rec.id) if self.media_url is not None
                    else f"/api/media/serve/{rec.id}")
            url = f"{s.public_base_url}{path}"
        req = build_request(
            media_type=rec.media_type, extension=PurePosixPath(rec.file_name).suffix[1:],
            mime_type=rec.mime_type.split(";")[0].strip(),
            original_name=rec.original_name, phone=row["phone"], caption=row["caption"],
            reply_to=row["reply_to"], media_url=url)
        if url is not None:
            return req, _once(req.prefix), len(req.prefix)
        length = len(req.prefix) + base64_length(rec.file_size) + len(req.suffix)
        return req, self._data_uri_body(rec, req.prefix, req.suffix), length

    async def _data_uri_body(self, rec: MediaRecord, prefix: bytes,
                             suffix: bytes) -> AsyncIterator[bytes]:
        """The JSON body with the media's base64 streamed from its stored chunks: each
        chunk holds a multiple of 3 bytes, so the stored texts joined are the file's
        base64 and are sent as they are, never decoded or joined into one string."""
        yield prefix
        batch = max(1, self.store.read_ahead)
        for first in range(0, rec.chunk_count, batch):
            last = min(rec.chunk_count, first + batch) - 1
            async with self.store.connection() as conn:
                rows = await Q.read_chunks.fetch(conn, media_id=rec.id, first_seq=first,
                                                 last_seq=last)
            if len(rows) != last - first + 1:
                raise MediaNotFound("the media's chunks are gone (deleted meanwhile)")
            for r in rows:
                yield r["data"].encode("ascii")
        yield suffix

    async def _record(self, row: dict[str, Any], outcome: Outcome) -> None:
        s = self.settings
        kind, args = outcome.kind, dict(id=row["id"], claim_token=row["claim_token"])
        async with self.store.connection() as conn, conn.transaction():
            await _audit_outcome(conn, row, outcome)
            if kind == "sent":
                await Q.delivery_sent.fetchval(conn, zaap_id=outcome.zaap_id,
                                               zapi_message_id=outcome.message_id,
                                               http_status=outcome.http_status, **args)
            elif kind == "rate_limited":
                delay = outcome.retry_after or backoff(row["attempts"], s.zapi_retry_base,
                                                       self._rand())
                self._paused_until = asyncio.get_running_loop().time() + delay
                await Q.delivery_retry.fetchval(conn, delay_seconds=float(delay),
                                                refund_attempt=True, error=outcome.error,
                                                http_status=outcome.http_status, **args)
            elif kind == "retry" and row["attempts"] < s.zapi_max_attempts:
                delay = backoff(row["attempts"], s.zapi_retry_base, self._rand())
                await Q.delivery_retry.fetchval(conn, delay_seconds=float(delay),
                                                refund_attempt=False, error=outcome.error,
                                                http_status=outcome.http_status, **args)
            elif kind == "unknown" and s.zapi_retry_unknown \
                    and row["attempts"] < s.zapi_max_attempts:
                await Q.delivery_retry.fetchval(
                    conn, delay_seconds=float(backoff(row["attempts"], s.zapi_retry_base,
                                                      self._rand())),
                    refund_attempt=False, error=outcome.error,
                    http_status=outcome.http_status, **args)
            else:
                state = "unknown" if kind == "unknown" else "failed"
                error = outcome.error
                if kind == "retry":
                    error = f"{error} (gave up after {row['attempts']} attempts)"
                await Q.delivery_finished.fetchval(conn, state=state, error=error,
                                                   http_status=outcome.http_status, **args)
        log.info("delivery %s: attempt %s -> %s%s", row["id"], row["attempts"], kind,
                 f" ({outcome.http_status})" if outcome.http_status else "")
        if self.on_outcome is not None:
            self.on_outcome(row["id"], kind)

    async def _record_surely(self, row: dict[str, Any], outcome: Outcome) -> None:
        # Z-API's answer is the one thing that cannot be asked for again: a database
        # hiccup must not turn a known 'sent' into an expired claim ('unknown').
        for attempt in range(RECORD_TRIES):
            try:
                await self._record(row, outcome)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    ServiceUnavailable):
                if attempt == RECORD_TRIES - 1:
                    raise
                log.warning("delivery %s: recording the outcome failed; retrying", row["id"])
                await asyncio.sleep(1.0)

    async def _interrupted(self, row: dict[str, Any], posted: bool) -> None:
        """A send cut by shutdown: not yet posted -> queued again now; posted -> the
        request may be out, recorded as such (as the lease recovery would)."""
        try:
            if posted:
                await self._record(row, Outcome(
                    "unknown", "the server stopped while the request was in flight"))
            else:
                async with self.store.connection() as conn:
                    await Q.delivery_retry.fetchval(
                        conn, id=row["id"], claim_token=row["claim_token"],
                        delay_seconds=0.0, refund_attempt=True,
                        error="released at shutdown before sending", http_status=None)
        except (Exception, asyncio.CancelledError):
            # The lease recovery will settle the row.
            log.warning("delivery %s: could not record the interruption", row["id"])


async def _audit_outcome(conn, row: dict[str, Any], outcome: Outcome) -> None:
    """One audit row per attempt's outcome, written with it (an outbox worker acts for
    nobody in particular: the actor is the outbox)."""
    detail = outcome.kind if outcome.error is None else f"{outcome.kind}: {outcome.error}"
    await AuditEntry(actor="zapi-outbox", action="zapi_attempt", media_id=row["media_id"],
                     outcome=f"delivery {row['id']} attempt {row['attempts']} {detail}"[:200]
                     ).write(conn)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _guard(body: AsyncIterator[bytes], broken: list) -> AsyncIterator[bytes]:
    """Pass ``body`` through, noting (in ``broken``) a failure of our own while reading."""
    try:
        async for piece in body:
            yield piece
    except (asyncpg.PostgresError, OSError, Exception) as e:
        broken.append(e)
        raise


# The application's Z-API outbox.
OUTBOX = web.AppKey("outbox", Outbox)
