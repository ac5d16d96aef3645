"""Wiring access control into the application (called by create_app)."""
from __future__ import annotations

import secrets

from aiohttp import web

from server.security.access import SIGNER
from server.security.cors import add_cors_headers
from server.security.refusals import setup_refusals
from server.security.signing import UrlSigner
from server.settings import SETTINGS
from server.store.media import STORE
from server.store.sqlfiles import Q

GENERATED_KEY = "url-signing"


async def signing_keys(store, configured: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """MEDIA_SIGNING_KEYS, or the key generated once and kept in the database, so every
    instance signs and verifies alike without any configuration."""
    if configured:
        return configured
    async with store.connection() as conn:
        secret = await Q.ensure_service_secret.fetchval(
            conn, name=GENERATED_KEY, secret=secrets.token_bytes(32))
    return (bytes(secret),)


def setup_security(app: web.Application) -> None:
    """After the database context: the URL signer and the refusal counter; on every
    response: CORS headers."""
    settings = app[SETTINGS]

    async def signer(app: web.Application):
        keys = await signing_keys(app[STORE], tuple(settings.security.signing_keys))
        app[SIGNER] = UrlSigner(keys, settings.security.url_ttl_seconds,
                                public=settings.security.public_read,
                                thumbnail_sizes=settings.processing.thumbnail_sizes)
        yield

    app.cleanup_ctx.append(signer)
    setup_refusals(app, STORE)
    app.on_response_prepare.append(add_cors_headers)
