"""The move from the legacy folder on a distributed store: import-legacy, the old URLs
redirecting to the bytes, then `verify` and `stats` run as commands against the
coordinator."""
from __future__ import annotations

import dataclasses

from server.store.media import MediaStore
from server.store.pool import create_pool
from tests.apps import build_app, start_client
from tests.legacy_util import make_chat, run_import
from tests.procs import run_cli


async def test_import_redirect_verify_stats(distributed, citus_settings, tmp_path):
    pool = await create_pool(distributed.dsn, citus_settings)
    try:
        chat = await make_chat(pool, tmp_path)
        report, _ = await run_import(MediaStore(pool, chunk_size=citus_settings.chunk_bytes),
                                     chat, processing=False)
    finally:
        await pool.close()
    imported = {r.name: r.media_id for r in report.rows if r.outcome == "imported"}
    assert set(imported) == {"a.jpg", "b.png", "2023/c.jpg", "foto 1.jpg"}

    settings = dataclasses.replace(citus_settings, legacy_dir=chat.folder)
    client = await start_client(build_app(settings, distributed.dsn))   # no key: old URLs
    try:
        for name in imported:
            resp = await client.get(f"/uploads/media/{name}")
            assert resp.status == 200, (name, await resp.text())
            assert await resp.read() == chat.files[name]
    finally:
        await client.close()

    env = {"DATABASE_URL": distributed.dsn}
    verify = run_cli(["verify", "--from", str(chat.folder)], env, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    stats = run_cli(["stats"], env, timeout=300)
    assert stats.returncode == 0, stats.stdout + stats.stderr
