"""``media-store purge``: a dry run that changes nothing, then the purge, its summary,
its audit rows, a progress bar on a terminal; bad ages refused before anything is
touched; and a server with MEDIA_RETENTION purging on its own."""
import asyncio
import fcntl
import json
import os
import re
import struct
import subprocess
import termios
import time

import asyncpg

from tests.http.test_retention import put
from tests.procs import CHECKOUT_COMMAND, REPO, clean_env, run_cli


async def _state(dsn: str):
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM media_files"),
                await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM purged_media"),
                await conn.fetch("SELECT actor, media_ids, outcome FROM media_audit_log "
                                 "WHERE action = 'purge'"))
    finally:
        await conn.close()


async def test_dry_run_then_purge_by_type_and_age(db_dsn, store, message_id):
    old_video = await put(store, message_id, "video", days_old=400, size=7000)
    old_audio = await put(store, message_id, "audio", days_old=400, size=3000)
    new_video = await put(store, message_id, "video", days_old=10, size=5000)
    env = {"DATABASE_URL": db_dsn}
    args = ["purge", "--older-than", "365d", "--type", "video"]

    dry = run_cli(args + ["--dry-run"], env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[:2] == ["would purge: 1 media, 7000 bytes (0.0 MiB)",
                                           "  video: 1 media, 7000 bytes"]
    assert await _state(db_dsn) == ([old_video, old_audio, new_video], None, [])

    res = run_cli(args, env)
    assert res.returncode == 0, res.stderr
    assert "purged: 1 media, 7000 bytes" in res.stdout
    kept, purged, audit = await _state(db_dsn)
    assert (kept, purged) == ([old_audio, new_video], [old_video])
    assert [(a["actor"].startswith("cli"), a["media_ids"]) for a in audit] == [
        (True, [old_video])]
    assert "purge --older-than 365d --type video" in audit[0]["outcome"]

    # Any type now; nothing left that old but the audio.
    res = run_cli(["purge", "--older-than", "52w"], env)
    assert "purged: 1 media, 3000 bytes" in res.stdout
    assert (await _state(db_dsn))[:2] == ([new_video], [old_video, old_audio])


def test_bad_ages_and_types_are_refused(db_dsn):
    for args in (["--older-than", "1y"], ["--older-than", "0d"], [],
                 ["--older-than", "30d", "--type", "sticker"]):
        res = run_cli(["purge", *args], {"DATABASE_URL": db_dsn})
        assert res.returncode == 2, args
        assert "Traceback" not in res.stderr


async def test_a_server_with_media_retention_purges_on_its_own(procs, db_dsn, store,
                                                               message_id):
    old = await put(store, message_id, "video", days_old=400)
    new = await put(store, message_id, "video", days_old=300)
    srv = procs.start({"DATABASE_URL": db_dsn, "MEDIA_RETENTION": "video:365d",
                       "MEDIA_JANITOR_INTERVAL_SECONDS": "1", "MEDIA_PUBLIC_READ": "true"})
    deadline = time.monotonic() + 30
    while (await _state(db_dsn))[1] is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    status, body = srv.get(f"/api/media/serve/{old}")
    assert (status, json.loads(body)["error"]) == (410, "media_purged")
    assert srv.get(f"/api/media/serve/{new}")[0] == 200
    assert [a["actor"] for a in (await _state(db_dsn))[2]] == ["retention"]


async def test_on_a_terminal_a_progress_bar_counts_the_media(db_dsn, store, message_id):
    for _ in range(3):
        await put(store, message_id, "audio", days_old=30, size=1000)
    main, term = os.openpty()   # stderr a terminal, as an operator's, 100 columns wide
    fcntl.ioctl(term, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        res = subprocess.run([*CHECKOUT_COMMAND, "purge", "--older-than", "1w"],
                             cwd=REPO, env=clean_env({"DATABASE_URL": db_dsn}),
                             stdout=subprocess.PIPE, stderr=term, text=True, timeout=60)
        os.close(term)
        drawn = b""
        while True:
            try:
                piece = os.read(main, 65536)
            except OSError:   # EIO: the terminal's other end is closed
                break
            if not piece:
                break
            drawn += piece
    finally:
        os.close(main)
    assert res.returncode == 0
    assert "purged: 3 media, 3000 bytes" in res.stdout
    assert re.search(rb"purge: 100%\|[^\n]*\| 3/3", drawn), drawn[-500:]
