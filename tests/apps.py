"""How every test builds the application and a client for it, in one place.

Tests never call create_app or TestClient themselves: what a test server needs to be
like production (and, later, the credentials a test client sends by default) is
decided here once. conftest.py's ``server_for`` and ``client`` fixtures use these;
tests/http/test_serve_http.py uses them for its module-wide server.
"""
from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.settings import Settings

# Changes a test makes to the application before it starts (routes, signal handlers).
Setup = Callable[[web.Application], None]


def build_app(settings: Settings, dsn: str, *, setup: Setup | None = None) -> web.Application:
    """The service as production wires it, minus the janitor (tests reclaim by hand)."""
    app = create_app(settings, dsn, run_janitor=False)
    if setup is not None:
        setup(app)
    return app


def client_options(key: str | None = None) -> dict:
    """Keyword arguments every test client is created with: the API key it sends on
    every request (conftest passes an admin key by default), or none."""
    return {"headers": {"Authorization": f"Bearer {key}"}} if key else {}


async def start_client(app: web.Application, *, server_cls: type[TestServer] = TestServer,
                       server_kwargs: dict | None = None, key: str | None = None
                       ) -> TestClient:
    """A started client on a loopback server for ``app``; the caller closes it."""
    client = TestClient(server_cls(app, **(server_kwargs or {})), **client_options(key))
    await client.start_server()
    return client
