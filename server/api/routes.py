"""The HTTP surface, in one table."""
from __future__ import annotations

from aiohttp import web

from server.api import deliveries, health, import_url, media, serve, upload
from server.zapi import webhook


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/media/upload-production", upload.upload_media,
               expect_handler=upload.expect_continue)
    r.add_post("/api/media/import-url", import_url.import_media_url)
    r.add_get("/api/media/serve/{mediaId}", serve.serve_media)  # GET and HEAD
    r.add_get("/api/media/{mediaId}", media.get_media)
    r.add_delete("/api/media/{mediaId}", media.delete_media)
    r.add_post("/api/media/{mediaId}/send", deliveries.send_media)
    r.add_get("/api/media/{mediaId}/deliveries", deliveries.list_media_deliveries)
    r.add_get("/api/deliveries/{deliveryId}", deliveries.get_delivery)
    r.add_post("/api/zapi/webhook/{secret}", webhook.zapi_webhook)
    r.add_get("/api/messages/{messageId}/media", media.list_message_media)
    r.add_get("/uploads/media/{name}", media.legacy_redirect)
    r.add_get("/healthz", health.healthz)
    r.add_get("/readyz", health.readyz)
    r.add_get("/metrics", health.metrics)
