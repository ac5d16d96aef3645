"""POST /api/media/import-url: keep media that arrived by URL (e.g. from Z-API, whose
media URLs expire after 30 days). The fetching and its SSRF rules live in ingest/url.py;
the body is received and processed as an upload's, in an upload slot."""
from __future__ import annotations

from aiohttp import web

from server.api.jsonbody import optional_str, read_json_object, required_id
from server.api.media_json import media_json, media_path
from server.errors import InvalidMessageId, MessageNotFound, UrlNotAllowed
from server.hygiene.guard import guard_for
from server.ingest.url import MAX_URL_LENGTH, import_url
from server.limits.uploads import UPLOAD_SLOTS
from server.observability.metrics import METRICS
from server.processing.pipeline import PROCESSING
from server.runtime.disconnect import cancelled_when_gone
from server.security import SIGNER
from server.security.audit import audited
from server.settings import SETTINGS
from server.store.media import STORE


async def import_media_url(request: web.Request) -> web.Response:
    with request.app[UPLOAD_SLOTS].take():
        return await _import(request)


async def _import(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    message_id = required_id(data, "message_id", InvalidMessageId)
    url = optional_str(data, "url", MAX_URL_LENGTH)
    file_name = optional_str(data, "file_name", 255)
    if url is None:
        raise UrlNotAllowed("url is required")
    store = request.app[STORE]
    async with audited(request, "import_url", message_id=message_id) as audit:
        if not await store.message_exists(message_id):
            raise MessageNotFound()   # before fetching anything
        # The download and its processing stop if the client goes away meanwhile
        # (server/runtime/disconnect.py): nothing is kept for nobody.
        async with cancelled_when_gone(request):
            rec = await import_url(store, request.app[PROCESSING],
                                   request.app[SETTINGS], url, message_id,
                                   file_name, audit=audit, guard=guard_for(request))
    metrics = request.app[METRICS]
    metrics.uploads.labels(rec.media_type).inc()
    metrics.bytes_received.inc(rec.file_size)
    return web.json_response(media_json(rec, request.app[SIGNER]), status=201,
                             headers={"Location": media_path(rec.id)})
