"""The HTTP surface, in one table, each route with the access it needs.

Scopes (server/security/access.py): OPEN (anyone), ADDRESS (MEDIA_METRICS_ALLOW),
READ < WRITE < ADMIN (API keys). A route added without ``add`` needs ADMIN.
"""
from __future__ import annotations

from aiohttp import web

from server.api import access, health, media, serve, upload
from server.security import ADDRESS, ADMIN, OPEN, READ, WRITE, add
from server.tus import routes as tus


def setup_routes(app: web.Application) -> None:
    add(app, "POST", "/api/media/upload-production", upload.upload_media, scope=WRITE,
        upload_token=True, cors=True, expect_handler=upload.expect_continue)
    tus.setup_routes(app)   # /api/media/tus/: WRITE or an upload token, CORS
    add(app, "POST", "/api/media/upload-tokens", access.create_upload_token, scope=WRITE)
    add(app, "GET", "/api/media/serve/{mediaId}", serve.serve_media, scope=READ,
        signed_url=True, cors=True)   # GET and HEAD
    add(app, "GET", "/api/media/{mediaId}", media.get_media, scope=READ)
    add(app, "DELETE", "/api/media/{mediaId}", media.delete_media, scope=WRITE)
    add(app, "GET", "/api/messages/{messageId}/media", media.list_message_media, scope=READ)
    add(app, "GET", "/api/audit", access.search_audit, scope=ADMIN)
    add(app, "GET", "/uploads/media/{name}", media.legacy_redirect, scope=READ)
    add(app, "GET", "/healthz", health.healthz, scope=OPEN)
    add(app, "GET", "/readyz", health.readyz, scope=OPEN)
    add(app, "GET", "/metrics", health.metrics, scope=ADDRESS)
