"""Application wiring: create_app(settings, dsn)."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import web

from server.api.routes import setup_routes
from server.errors import error_middleware
from server.hygiene.guard import scanner_from
from server.hygiene.scanning import SCANNER, scan_worker
from server.runtime.memory import memory_trimmer
from server.runtime.sending import STREAM_SLOTS, StreamSlots
from server.limits.uploads import UPLOAD_SLOTS, UploadSlots
from server.observability.metrics import METRICS, Metrics
from server.observability.requestid import add_request_id_header, request_id_middleware
from server.processing.pipeline import PROCESSING, Processing
from server.processing.policy import Policy
from server.security.middleware import access_middleware
from server.security.setup import setup_security
from server.settings import SETTINGS, Settings
from server.store.cache import ChunkCache
from server.store.media import STORE, MediaStore
from server.store.replicas import ReadReplicas
from server.store.pool import DSN, create_pool
from server.workers.instances import deletion_feed, heartbeat
from server.workers.janitor import janitor
from server.workers.outbox import outbox_worker, zapi_ctx
from server.workers.retention import retention
from server.workers.runner import workers_ctx
from server.workers.sampling import metrics_sampler

log = logging.getLogger(__name__)


STARTED = web.RequestKey("started", float)


def _route_name(request: web.Request) -> str:
    route = request.match_info.route.resource
    return route.canonical if route is not None else "unmatched"


@web.middleware
async def timing_middleware(request: web.Request, handler):
    start = request[STARTED] = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    except asyncio.CancelledError:
        status = 499   # the client closed the connection first (nginx's convention)
        raise
    finally:
        request.app[METRICS].requests.labels(_route_name(request), str(status)) \
            .observe(time.perf_counter() - start)


async def _first_byte(request: web.Request, response: web.StreamResponse) -> None:
    start = request.get(STARTED)
    if start is not None:
        request.app[METRICS].first_byte.labels(_route_name(request)).observe(
            time.perf_counter() - start)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp would announce its and Python's exact versions to every client.
    response.headers["Server"] = "media-store"


def create_app(settings: Settings, dsn: str, *, run_janitor: bool = True) -> web.Application:
    """The aiohttp application for an already migrated database at ``dsn``."""
    # aiohttp's own body limit is for request.post(); uploads are streamed and counted
    # against MEDIA_MAX_UPLOAD_BYTES by upload.py, so this only guards small bodies.
    # auto_decompress off: an upload with a Content-Encoding is refused (415) before
    # its body is read, and no body is ever inflated behind the size count.
    app = web.Application(middlewares=[request_id_middleware, timing_middleware,
                                       error_middleware, access_middleware],
                          handler_args={"auto_decompress": False})
    app[SETTINGS] = settings
    app[DSN] = dsn
    app[UPLOAD_SLOTS] = UploadSlots(settings.uploads.max_concurrent)
    # Long reads from the store at once: half the pool, so the other half is always
    # free for small requests (server/runtime/sending.py).
    app[STREAM_SLOTS] = StreamSlots(settings.db.pool_max // 2)
    app[METRICS] = Metrics()
    if (scanner := scanner_from(settings)) is not None:
        app[SCANNER] = scanner

    async def database(app: web.Application):
        pool = await create_pool(dsn, settings)
        # Replica pools connect lazily (min 0): a replica down at start-up is skipped,
        # not a reason to refuse to start.
        replicas = ReadReplicas([await create_pool(url.reveal(), settings, min_size=0)
                                 for url in settings.db.read_urls]) \
            if settings.db.read_urls else None
        app[STORE] = MediaStore(pool, chunk_size=settings.store.chunk_bytes,
                                     read_ahead=settings.store.read_ahead_chunks,
                                     acquire_timeout=settings.db.pool_acquire_timeout,
                                     stat_cache_seconds=settings.store.metadata_cache_seconds,
                                     instance_id=uuid.uuid4(),
                                     chunk_cache=ChunkCache(settings.store.cache_bytes)
                                     if settings.store.cache_bytes else None,
                                     replicas=replicas)
        yield
        await app[STORE].batched_reads.aclose()
        if replicas is not None:
            await replicas.close()
        await pool.close()

    async def processing(app: web.Application):
        # Worker processes (server/processing/workers.py), started now so the first
        # uploads don't wait for them, and killed at the end.
        app[PROCESSING] = processing = Processing(Policy.from_settings(settings))
        try:
            if settings.processing.enabled:
                await processing.start_workers()
            yield
        finally:
            await processing.aclose()

    app.on_response_prepare.append(_server_header)
    app.on_response_prepare.append(add_request_id_header)
    app.on_response_prepare.append(_first_byte)
    app.cleanup_ctx.append(processing)
    app.cleanup_ctx.append(database)
    setup_security(app)   # needs the store: after the database context
    app.cleanup_ctx.append(zapi_ctx)
    # The instance workers keep this instance correct among others; the janitor is
    # housekeeping (tests leave it off to control when it runs).
    workers = [heartbeat, deletion_feed, memory_trimmer, metrics_sampler] + (
        [janitor] if run_janitor else [])
    if run_janitor and settings.workers.retention:
        workers.append(retention)   # housekeeping too: off where the janitor is
    if settings.zapi.enabled:
        workers.append(outbox_worker)
    if settings.scan.clamd is not None:
        workers.append(scan_worker)   # what was stored unscanned (MEDIA_SCAN_FAIL=open)
    app.cleanup_ctx.append(workers_ctx(workers))
    setup_routes(app)
    return app
