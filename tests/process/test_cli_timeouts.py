"""Admin commands are bounded by DB_ADMIN_COMMAND_TIMEOUT_SECONDS, not by the requests'
DB_COMMAND_TIMEOUT_SECONDS (issue 6: "admin commands may use longer").

A real ``run.py`` process against a real PostgreSQL: the test holds a lock the command's
statement needs, so that statement really takes longer than DB_COMMAND_TIMEOUT_SECONDS;
the command must wait it out and succeed, and fail cleanly once the admin bound is the
shorter one.
"""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.procs import run_cli

REQUEST_TIMEOUT = "0.5"     # DB_COMMAND_TIMEOUT_SECONDS: what a request would get
HELD = 2.0                  # seconds the lock is held: 4x the request bound

# (command, the table its statement needs): through the admin pool (server/store/pool.py)
# and through the keys command's own connection (server/cli/keys.py).
CASES = [(["reclaim"], "media_files"), (["keys", "list"], "api_keys")]


async def _blocked(dsn: str, table: str, args: list[str], env: dict[str, str]):
    """Run ``args`` while ``table`` is locked; release the lock once the command's
    statement has waited for it HELD seconds. (returncode, stdout, stderr, whether the
    command was seen waiting on the lock)."""
    holder = await asyncpg.connect(dsn)
    # Another session watches: inside the holder's transaction pg_stat_activity would
    # be the snapshot taken at its first read.
    watcher = await asyncpg.connect(dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        cli = asyncio.ensure_future(asyncio.to_thread(run_cli, args, env, 60))
        seen = False
        for _ in range(300):   # until the command's statement queues behind the lock
            seen = await watcher.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND pid <> pg_backend_pid()")
            if seen or cli.done():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(HELD)
        still_running = not cli.done()
        await tx.rollback()
        res = await cli
        return res.returncode, res.stdout, res.stderr, seen and still_running
    finally:
        await holder.close()
        await watcher.close()


@pytest.mark.parametrize("args,table", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
async def test_admin_command_outlasts_the_request_timeout(db_dsn, args, table):
    env = {"DATABASE_URL": db_dsn, "DB_COMMAND_TIMEOUT_SECONDS": REQUEST_TIMEOUT}
    code, out, err, waited = await _blocked(db_dsn, table, args, env)
    assert waited, "the command's statement never waited on the lock"
    assert code == 0, err
    assert "database error" not in err


@pytest.mark.parametrize("args,table", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
async def test_admin_timeout_is_what_bounds_them(db_dsn, args, table):
    # The same wait with the admin bound below it: a clean one-line failure, exit 1.
    env = {"DATABASE_URL": db_dsn, "DB_COMMAND_TIMEOUT_SECONDS": "30",
           "DB_ADMIN_COMMAND_TIMEOUT_SECONDS": REQUEST_TIMEOUT}
    code, out, err, _ = await _blocked(db_dsn, table, args, env)
    assert code == 1, (out, err)
    assert "database error: TimeoutError" in err
    assert "Traceback" not in err
