"""The HTTP surface, in one table."""
from __future__ import annotations

from aiohttp import web

from server.api import health, media, search, serve, upload
from server.legacy import web as legacy_web


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/media/upload-production", upload.upload_media,
               expect_handler=upload.expect_continue)
    r.add_get("/api/media", search.search_media)
    r.add_get("/api/media/serve/{mediaId}", serve.serve_media)  # GET and HEAD
    r.add_get("/api/media/{mediaId}", media.get_media)
    r.add_delete("/api/media/{mediaId}", media.delete_media)
    r.add_get("/api/messages/{messageId}/media", media.list_message_media)
    # The whole tail, encoded: server/legacy decodes it itself, segment by segment.
    r.add_get("/uploads/media/{name:.+}", legacy_web.legacy_media)
    r.add_get("/healthz", health.healthz)
    r.add_get("/readyz", health.readyz)
    r.add_get("/metrics", health.metrics)
