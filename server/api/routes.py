"""The HTTP surface, in one table, each route with the access it needs.

Scopes (server/security/access.py): OPEN (anyone), ADDRESS (MEDIA_METRICS_ALLOW),
READ < WRITE < ADMIN (API keys). A route added without ``add`` needs ADMIN.
"""
from __future__ import annotations

from aiohttp import web

from server.api import access, deliveries, health, import_url, media, search, serve, upload
from server.legacy import web as legacy_web
from server.security import ADDRESS, ADMIN, OPEN, READ, WRITE, add
from server.security.access import SEND_SCOPE
from server.zapi import webhook
from server.tus import routes as tus


def setup_routes(app: web.Application) -> None:
    add(app, "POST", "/api/media/upload-production", upload.upload_media, scope=WRITE,
        upload_token=True, cors=True, expect_handler=upload.expect_continue)
    tus.setup_routes(app)   # /api/media/tus/: WRITE or an upload token, CORS
    add(app, "POST", "/api/media/upload-tokens", access.create_upload_token, scope=WRITE)
    add(app, "POST", "/api/media/import-url", import_url.import_media_url, scope=WRITE)
    add(app, "GET", "/api/media", search.search_media, scope=READ)
    add(app, "GET", "/api/media/serve/{mediaId}", serve.serve_media, scope=READ,
        signed_url=True, cors=True)   # GET and HEAD
    add(app, "GET", "/api/media/{mediaId}", media.get_media, scope=READ)
    add(app, "DELETE", "/api/media/{mediaId}", media.delete_media, scope=WRITE)
    add(app, "GET", "/api/messages/{messageId}/media", media.list_message_media, scope=READ)
    add(app, "POST", "/api/media/{mediaId}/send", deliveries.send_media,
        scope=SEND_SCOPE)
    add(app, "GET", "/api/media/{mediaId}/deliveries", deliveries.list_media_deliveries,
        scope=READ)
    add(app, "GET", "/api/deliveries/{deliveryId}", deliveries.get_delivery, scope=READ)
    # Z-API sends no credential: the secret in the path is the webhook's authentication.
    add(app, "POST", "/api/zapi/webhook/{secret}", webhook.zapi_webhook, scope=OPEN)
    add(app, "GET", "/api/audit", access.search_audit, scope=ADMIN)
    # Old clients hold these URLs without credentials, and the folder was public: the
    # answer is a redirect to a freshly signed URL (audited), or the folder's file
    # during the move. The whole tail, encoded: server/legacy decodes it itself.
    add(app, "GET", "/uploads/media/{name:.+}", legacy_web.legacy_media, scope=OPEN)
    add(app, "GET", "/healthz", health.healthz, scope=OPEN)
    add(app, "GET", "/readyz", health.readyz, scope=OPEN)
    add(app, "GET", "/metrics", health.metrics, scope=ADDRESS)
