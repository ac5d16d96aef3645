"""``run.py keys create|set-quota|list|revoke``: API keys for the chat backend and
operators, their quotas and upload rates (server/hygiene/quotas.py).

``create`` prints the key, and only the key, on one line of stdout (it is shown once:
scripts capture it with ``KEY=$(python run.py keys create backend)``). Like
``create-message``, each applies pending migrations first unless
MEDIA_AUTO_MIGRATE=false, so on a fresh database it is the first command that works.
"""
from __future__ import annotations

import asyncio
import getpass
import sys


from server.hygiene.quotas import set_quota
from server.hygiene.sizes import format_size
from server.security.audit import AuditEntry
from server.security.keys import KeyRefused, create_key, list_keys, revoke_key
from server.store.pool import connect


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:120]
    except Exception:   # no user name in a bare container: still a trace
        return "cli"


async def _run(dsn: str, fn, command_timeout: float | None = None):
    conn = await connect(dsn, command_timeout=command_timeout)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def keys_command(dsn: str, args, command_timeout: float | None = None) -> int:
    """Run one ``keys`` sub-command; the exit code."""
    actor = _actor()
    try:
        if args.keys_command == "create":
            audit = AuditEntry(actor=actor, action="key_created", outcome="ok")
            key = asyncio.run(_run(dsn, lambda c: create_key(
                c, args.name, args.scope, audit=_Named(audit, args.name),
                limits=_limits(args)), command_timeout))
            print(key)
        elif args.keys_command == "set-quota":
            audit = AuditEntry(actor=actor, action="key_quota", outcome="ok")
            limits = _limits(args)
            if not limits:
                print("error: give --quota-bytes, --quota-files or --uploads-per-minute",
                      file=sys.stderr)
                return 2
            if not asyncio.run(_run(dsn, lambda c: set_quota(
                    c, args.name, audit=_Named(audit, _described(args.name, limits)),
                    **limits), command_timeout)):
                print(f"error: no active key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"set {_described(args.name, limits)}")
        elif args.keys_command == "revoke":
            audit = AuditEntry(actor=actor, action="key_revoked", outcome="ok")
            if not asyncio.run(_run(dsn, lambda c: revoke_key(
                    c, args.name, audit=_Named(audit, args.name)), command_timeout)):
                print(f"error: no active key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}")
        else:
            _print_table(asyncio.run(_run(dsn, list_keys, command_timeout)))
    except KeyRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _limits(args) -> dict:
    """The quota options given (absent ones are not in ``args``)."""
    return {k: getattr(args, k) for k in ("quota_bytes", "quota_files", "uploads_per_minute")
            if hasattr(args, k)}


def _described(name: str, limits: dict) -> str:
    shown = {k: format_size(v) if k == "quota_bytes" else ("none" if v is None else v)
             for k, v in limits.items()}
    return name + " " + " ".join(f"{k}={v}" for k, v in shown.items())


class _Named:
    """An audit entry whose outcome names the key it is about."""

    def __init__(self, entry: AuditEntry, name: str):
        self.entry, self.name = entry, name

    async def write(self, conn, outcome: str = "ok", **changes) -> None:
        await self.entry.write(conn, outcome=f"{outcome}: key {self.name}"[:200], **changes)


def _print_table(rows) -> None:
    def when(t):
        return t.strftime("%Y-%m-%d %H:%M") if t else "-"

    def of(used, quota, fmt=str):
        return fmt(used) + "/" + ("-" if quota is None else fmt(quota))
    print(f"{'NAME':24} {'SCOPE':6} {'BYTES':16} {'FILES':14} {'PER MIN':7} "
          f"{'CREATED':16} {'LAST USED':16} REVOKED")
    for r in rows:
        rate = "-" if r.uploads_per_minute is None else str(r.uploads_per_minute)
        print(f"{r.name:24} {r.scope:6} {of(r.bytes, r.quota_bytes, format_size):16} "
              f"{of(r.files, r.quota_files):14} {rate:7} "
              f"{when(r.created_at):16} {when(r.last_used_at):16} {when(r.revoked_at)}")
