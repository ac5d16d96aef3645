"""One Citus cluster (a coordinator and two workers, tests/citus_cluster.py) for the
whole session, started by the first test that asks for it, with the service's schema
migrated and distributed on it once; every test here skips, saying why in one line,
where Citus is not built."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from server.cli.distribute import distribute
from server.cli.migrate import apply_migrations
from server.settings import Settings
from tests.apps import build_app, start_client
from tests.citus_cluster import CitusCluster, start_cluster, unavailable
from tests.dbutil import create_api_key
from tests.media import BYTES_KEPT


@pytest.fixture(scope="session")
def citus() -> CitusCluster:
    reason = unavailable()
    if reason:
        pytest.skip(f"no Citus cluster: {reason}")
    cluster = start_cluster(workers=2)
    try:
        yield cluster
    finally:
        cluster.close()


@dataclass
class Distributed:
    dsn: str
    dry_run: str          # what `distribute --dry-run` printed before the first run
    first: list[str]      # the steps the first run applied
    second: list[str]     # the steps the second run applied (none: idempotent)


@pytest.fixture(scope="session")
def distributed(citus) -> Distributed:
    """The coordinator after `migrate`, `distribute --dry-run`, then `distribute` twice."""
    apply_migrations(citus.dsn)
    printed: list[str] = []
    asyncio.run(distribute(citus.dsn, dry_run=True, out=printed.append))
    first = asyncio.run(distribute(citus.dsn, out=lambda _: None))
    second = asyncio.run(distribute(citus.dsn, out=lambda _: None))
    return Distributed(citus.dsn, "\n".join(printed), first, second)


@pytest.fixture
def citus_settings(distributed) -> Settings:
    # Small chunks, so that a few KiB span several chunk rows; bytes kept as sent.
    return Settings(database_url=distributed.dsn, chunk_bytes=3 * 1024,
                    max_upload_bytes=64 * 1024**2, **BYTES_KEPT)


@pytest.fixture
async def citus_client(distributed, citus_settings):
    """The service against the coordinator, with a client sending an admin key."""
    key = await create_api_key(distributed.dsn, "admin")
    client = await start_client(build_app(citus_settings, distributed.dsn), key=key)
    yield client
    await client.close()
