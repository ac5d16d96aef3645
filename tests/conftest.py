"""Test set-up: a real PostgreSQL, a fresh database per test.

The server is TEST_DATABASE_URL when set (any PostgreSQL 13+ where the user may create
databases), else an embedded PostgreSQL started once for the session in a temporary
folder. Migrations run once into a template database; each test gets a copy of it
(CREATE DATABASE ... TEMPLATE), which is cheap and fully isolated.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from server.cli.migrate import apply_migrations
from server.settings import Settings, replace_settings
from server.store.media import MediaStore
from server.store.pool import create_pool
from tests.apps import build_app, start_client
from tests import offline_dns
from tests.dbutil import admin, create_api_key, dsn_for
from tests.fake_zapi import FakeZapi
from tests.media import BYTES_KEPT
from tests.procs import Processes

TEMPLATE = f"media_tpl_{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def no_dns():
    """Host names resolve through /etc/hosts or as IP literals only, never through the
    machine's DNS resolver, which is not loopback (tests/offline_dns.py). For this test
    process; the server processes tests start resolve as the service does."""
    with pytest.MonkeyPatch.context() as mp:
        offline_dns.install(mp)
        yield


@pytest.fixture(scope="session")
def pg_server_dsn():
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    from server.cli import embedded_pg
    folder = Path(tempfile.mkdtemp(prefix="media-test-pg-"))
    server = embedded_pg.start(folder)
    try:
        yield server.get_uri()
    finally:
        embedded_pg.stop(server)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_dsn(pg_server_dsn):
    # Test-harness DDL on identifiers we generate; the service's own SQL lives in sql/.
    asyncio.run(admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{TEMPLATE}"',
                       f'CREATE DATABASE "{TEMPLATE}"'))
    dsn = dsn_for(pg_server_dsn, TEMPLATE)
    apply_migrations(dsn)
    yield dsn
    asyncio.run(admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))


@pytest.fixture
async def db_dsn(pg_server_dsn, template_dsn):
    """A fresh, migrated database for one test."""
    name = f"media_t_{uuid.uuid4().hex[:16]}"
    await admin(pg_server_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield dsn_for(pg_server_dsn, name)
    await admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(db_dsn) -> Settings:
    # Storage and serving tests check that the bytes sent come back unchanged, with
    # padded JPEGs as stand-ins for files of exact sizes: image compression and metadata
    # stripping (which would rewrite them) are off here; the processing tests
    # (tests/http/test_processing_*.py) turn them on.
    return replace_settings(Settings(), db__url=db_dsn, store__chunk_bytes=3 * 1024,
                            uploads__max_bytes=64 * 1024**2, **BYTES_KEPT)


@pytest.fixture
async def pool(db_dsn, settings):
    p = await create_pool(db_dsn, settings)
    yield p
    await p.close()


@pytest.fixture
async def store(pool, settings) -> MediaStore:
    return MediaStore(pool, chunk_size=settings.store.chunk_bytes)


@pytest.fixture
async def key_for(db_dsn):
    """``await key_for("read")``: a new API key of that scope in the test database."""
    async def make(scope: str = "admin", name: str | None = None) -> str:
        return await create_api_key(db_dsn, scope, name)
    return make


@pytest.fixture
async def admin_key(key_for) -> str:
    return await key_for("admin", "test-admin")


@pytest.fixture
async def server_for(db_dsn, settings, admin_key):
    """Start a server on this test's database: ``await server_for(**setting_changes)``,
    optionally ``setup=`` (a function given the app before it starts), ``server_cls=``
    and ``server_kwargs=`` (the TestServer), ``key=`` (the API key the client sends;
    the admin key by default, None for none). Returns its started client.

    (db_dsn first: it is then torn down last, after the apps have closed their pools.)
    """
    clients = []

    async def start(*, setup=None, server_cls=None, server_kwargs=None, key=admin_key,
                    **changes):
        app = build_app(replace_settings(settings, **changes), db_dsn, setup=setup)
        extra = {"server_cls": server_cls} if server_cls is not None else {}
        c = await start_client(app, server_kwargs=server_kwargs, key=key, **extra)
        clients.append(c)
        return c

    yield start
    for c in reversed(clients):
        await c.close()


@pytest.fixture
async def client(server_for):
    """The service, with a client that sends an admin API key on every request."""
    return await server_for()


@pytest.fixture
async def client_with(server_for):
    """``await client_with(uploads__idle_timeout=0.5)``: a server with changed settings,
    and a client sending the admin key."""
    return server_for


@pytest.fixture
async def anon_client(client, aiohttp_client):
    """Another client of the same server that sends no credentials."""
    return await aiohttp_client(client.server)


@pytest.fixture
async def client_as(client, aiohttp_client, key_for):
    """``await client_as("read")``: a client of the same server with a key of that scope."""
    async def make(scope: str):
        return await aiohttp_client(client.server,
                                    headers={"Authorization": f"Bearer {await key_for(scope)}"})
    return make


@pytest.fixture
async def message_id(store) -> int:
    return await store.create_message()


@pytest.fixture
async def processing_client_with(server_for):
    """``await processing_client_with(**setting_changes)``: a server with the processing
    defaults as deployed (compression and metadata stripping on), and the admin key."""
    async def start(**changes):
        return await server_for(**{"processing__image_compress": True,
                                   "processing__keep_image_metadata": False,
                                   "processing__keep_video_metadata": False, **changes})
    return start


@pytest.fixture
async def processing_client(processing_client_with):
    return await processing_client_with()


@pytest.fixture
async def fake(aiohttp_server):
    """A fake Z-API (tests/fake_zapi.py) on loopback; its port is fake.server.port."""
    f = FakeZapi()
    f.server = await aiohttp_server(f.app, host="127.0.0.1")
    return f


@pytest.fixture
def procs():
    """Server and tool processes a test starts, stopped and cleaned up after it."""
    p = Processes()
    try:
        yield p
    finally:
        p.cleanup()
