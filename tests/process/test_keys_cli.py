"""``run.py keys create|list|revoke`` as an operator runs them, on a real database."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.dbutil import admin, dsn_for, fetchval
from tests.procs import run_cli


@pytest.fixture
async def empty_dsn(pg_server_dsn):
    """A database with nothing in it: ``keys create`` must migrate it first."""
    name = f"media_keys_{uuid.uuid4().hex[:16]}"
    await admin(pg_server_dsn, f'CREATE DATABASE "{name}"')   # test-harness DDL
    try:
        yield dsn_for(pg_server_dsn, name)
    finally:
        await admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_create_on_a_fresh_database_prints_only_the_key(empty_dsn):
    res = run_cli(["keys", "create", "backend"], {"DATABASE_URL": empty_dsn})
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(r"msk_[A-Za-z0-9_-]{43}\n", res.stdout), res.stdout
    assert await fetchval(empty_dsn, "SELECT scope FROM api_keys WHERE name = 'backend'"
                          ) == "write"   # the default scope
    res = run_cli(["keys", "create", "ops", "--scope", "admin"], {"DATABASE_URL": empty_dsn})
    assert res.returncode == 0 and res.stdout.count("\n") == 1
    assert await fetchval(empty_dsn, "SELECT count(*) FROM media_audit_log WHERE action = "
                                     "'key_created' AND outcome LIKE 'ok%key ops'") == 1


async def test_list_never_shows_a_key_and_revoke(db_dsn):
    env = {"DATABASE_URL": db_dsn}
    key = run_cli(["keys", "create", "phones", "--scope", "read"], env).stdout.strip()
    listing = run_cli(["keys", "list"], env)
    assert listing.returncode == 0, listing.stderr
    assert key not in listing.stdout and key[4:20] not in listing.stdout
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("phones"))
    assert line.split()[1] == "read"
    assert line.split()[-1] == "-"          # not revoked
    res = run_cli(["keys", "revoke", "phones"], env)
    assert res.returncode == 0 and res.stdout.strip() == "revoked phones"
    line = next(ln for ln in run_cli(["keys", "list"], env).stdout.splitlines()
                if ln.startswith("phones"))
    assert line.split()[-1] != "-"          # revoked, with its time
    assert await fetchval(db_dsn, "SELECT count(*) FROM media_audit_log "
                                  "WHERE action = 'key_revoked'") == 1
    # The name is free again once revoked.
    assert run_cli(["keys", "create", "phones"], env).returncode == 0


@pytest.mark.parametrize("args,message", [
    (["keys", "revoke", "nobody"], "no active key named 'nobody'"),
    (["keys", "create", "bad name"], "key name"),
    (["keys", "create", "-x"], None),
    (["keys", "create", "a", "--scope", "root"], None),
])
def test_refusals_are_one_line(db_dsn, args, message):
    res = run_cli(args, {"DATABASE_URL": db_dsn})
    assert res.returncode in (1, 2), res
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    if message:
        assert message in res.stderr


def test_a_duplicate_name_is_refused(db_dsn):
    env = {"DATABASE_URL": db_dsn}
    assert run_cli(["keys", "create", "twice"], env).returncode == 0
    res = run_cli(["keys", "create", "twice"], env)
    assert res.returncode == 1 and res.stdout == ""
    assert "exists" in res.stderr


def test_without_auto_migrate_an_empty_database_is_one_line(empty_dsn):
    res = run_cli(["keys", "create", "x"], {"DATABASE_URL": empty_dsn,
                                            "MEDIA_AUTO_MIGRATE": "false"})
    assert res.returncode == 1
    assert res.stdout == ""
    assert "database error" in res.stderr and "Traceback" not in res.stderr


async def test_quotas_on_create_set_quota_and_list(db_dsn):
    env = {"DATABASE_URL": db_dsn}
    res = run_cli(["keys", "create", "app", "--quota-bytes", "50M", "--quota-files", "10",
                   "--uploads-per-minute", "60"], env)
    assert res.returncode == 0, res.stderr
    assert await fetchval(db_dsn, "SELECT quota_bytes FROM api_keys WHERE name = 'app'"
                          ) == 50 * 1024**2
    line = next(ln for ln in run_cli(["keys", "list"], env).stdout.splitlines()
                if ln.startswith("app"))
    assert line.split()[2:5] == ["0/50M", "0/10", "60"]
    res = run_cli(["keys", "set-quota", "app", "--quota-bytes", "2G",
                   "--uploads-per-minute", "none"], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "set app quota_bytes=2G uploads_per_minute=none"
    line = next(ln for ln in run_cli(["keys", "list"], env).stdout.splitlines()
                if ln.startswith("app"))
    assert line.split()[2:5] == ["0/2G", "0/10", "-"]   # the file quota stayed
    assert await fetchval(db_dsn, "SELECT outcome FROM media_audit_log "
                                  "WHERE action = 'key_quota'") == \
        "ok: key app quota_bytes=2G uploads_per_minute=none"
    bad = run_cli(["keys", "set-quota", "app", "--quota-bytes", "lots"], env)
    assert bad.returncode == 2 and "not a size" in bad.stderr
    assert run_cli(["keys", "set-quota", "app"], env).returncode == 2
    missing = run_cli(["keys", "set-quota", "nobody", "--quota-files", "1"], env)
    assert missing.returncode == 1 and "no active key named 'nobody'" in missing.stderr
