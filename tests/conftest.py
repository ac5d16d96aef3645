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

from server.app import create_app
from server.cli.migrate import apply_migrations
from server.settings import Settings
from server.store.media import MediaStore
from server.store.pool import create_pool
from tests.dbutil import admin, dsn_for
from tests.media import BYTES_KEPT

TEMPLATE = f"media_tpl_{os.getpid()}"


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
    # (tests/test_processing_*.py) turn them on.
    return Settings(database_url=db_dsn, chunk_bytes=3 * 1024, max_upload_bytes=64 * 1024**2,
                    **BYTES_KEPT)


@pytest.fixture
async def pool(db_dsn, settings):
    p = await create_pool(db_dsn, settings)
    yield p
    await p.close()


@pytest.fixture
async def store(pool, settings) -> MediaStore:
    return MediaStore(pool, chunk_size=settings.chunk_bytes)


@pytest.fixture
async def client(db_dsn, settings, aiohttp_client):
    # db_dsn first: it is then torn down last, after the app has closed its pool.
    return await aiohttp_client(create_app(settings, db_dsn, run_janitor=False))


@pytest.fixture
async def message_id(store) -> int:
    return await store.create_message()


@pytest.fixture
def processing_settings(db_dsn) -> Settings:
    """The processing defaults (compression, metadata stripping) as deployed."""
    return Settings(database_url=db_dsn, chunk_bytes=3 * 1024, max_upload_bytes=64 * 1024**2)


@pytest.fixture
async def processing_client(db_dsn, processing_settings, aiohttp_client):
    return await aiohttp_client(create_app(processing_settings, db_dsn, run_janitor=False))
