"""The HTTP surface, in one table, each route with the access it needs.

Scopes (server/security/access.py): OPEN (anyone), ADDRESS (MEDIA_METRICS_ALLOW),
READ < WRITE < ADMIN (API keys). A route added without ``add`` needs ADMIN.
"""
from __future__ import annotations

from aiohttp import web

from server.api import (
    access,
    console,
    deliveries,
    health,
    hygiene,
    import_url,
    legacy_urls,
    media,
    search,
    serve,
    stats,
    tus,
    upload,
    zapi_webhook,
)
from server.security import ADDRESS, ADMIN, OPEN, READ, WRITE, add
from server.security.access import CORS_PATHS, ROUTE_ACCESS, SEND_SCOPE, Access


def setup_routes(app: web.Application) -> None:
    add(app, "POST", "/api/media/upload-production", upload.upload_media, scope=WRITE,
        upload_token=True, cors=True, expect_handler=upload.expect_continue)
    _tus_routes(app)
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
    add(app, "POST", "/api/zapi/webhook/{secret}", zapi_webhook.zapi_webhook, scope=OPEN)
    add(app, "GET", "/api/audit", access.search_audit, scope=ADMIN)
    add(app, "GET", "/api/stats", stats.get_stats, scope=ADMIN)
    add(app, "GET", "/api/whoami", access.whoami, scope=READ)
    # The console's page and modules hold no data (every call it makes carries a key).
    add(app, "GET", "/console", console.console_page, scope=OPEN)
    add(app, "GET", "/console/", console.console_page, scope=OPEN)
    add(app, "GET", "/console/{name}", console.console_asset, scope=OPEN)
    # Storage hygiene (server/hygiene): usage and quotas, quarantine.
    add(app, "GET", "/api/usage", hygiene.get_usage, scope=READ)
    add(app, "POST", "/api/media/{mediaId}/quarantine", hygiene.quarantine_media,
        scope=ADMIN)
    add(app, "DELETE", "/api/media/{mediaId}/quarantine", hygiene.release_media,
        scope=ADMIN)
    add(app, "GET", "/api/quarantine", hygiene.list_quarantine, scope=ADMIN)
    # Old clients hold these URLs without credentials, and the folder was public: the
    # answer is a redirect to a freshly signed URL (audited), or the folder's file
    # during the move. The whole tail, encoded: server/legacy decodes it itself.
    add(app, "GET", "/uploads/media/{name:.+}", legacy_urls.legacy_media, scope=OPEN)
    add(app, "GET", "/healthz", health.healthz, scope=OPEN)
    add(app, "GET", "/readyz", health.readyz, scope=OPEN)
    add(app, "GET", "/metrics", health.metrics, scope=ADDRESS)


def _tus_routes(app: web.Application) -> None:
    """/api/media/tus/: every route needs a write key or an upload token (for the
    upload's message) and is open to CORS; OPTIONS is open (tus clients ask it before
    anything) and doubles as the CORS preflight."""
    for path in (tus.BASE, tus.UPLOAD):
        # tus's own OPTIONS first, so add(cors=True) below keeps it as the preflight.
        route = app.router.add_route("OPTIONS", path, tus.options)
        canonical = route.resource.canonical
        app.setdefault(ROUTE_ACCESS, {})[("OPTIONS", canonical)] = Access(OPEN)
        app.setdefault(CORS_PATHS, {}).setdefault(canonical, set())
    opts = {"scope": WRITE, "upload_token": True, "cors": True}
    add(app, "POST", tus.BASE, tus.create, **opts)
    head = add(app, "HEAD", tus.UPLOAD, tus.head, **opts)
    # The middleware looks HEAD up as GET (GET routes answer HEAD); there is no GET here.
    table = app[ROUTE_ACCESS]
    table[("GET", head.resource.canonical)] = table[("HEAD", head.resource.canonical)]
    add(app, "PATCH", tus.UPLOAD, tus.patch, **opts)
    add(app, "DELETE", tus.UPLOAD, tus.delete, **opts)
    add(app, "POST", tus.UPLOAD, tus.override, **opts)
    tus.setup(app)
