"""API keys: made here, shown once, stored only as a SHA-256.

A key is ``msk_`` and 43 base64url characters (256 random bits). Being random, its
SHA-256 is as good as a slow hash and lets the database find the key by equality; the
digest found is compared again in constant time. Keys are looked up on every request
(no cache), so a revoked key stops working at once on every instance.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from datetime import datetime


from server.security.access import KEY_SCOPES
from server.store.pool import UniqueViolation
from server.store.sqlfiles import Q

KEY_PREFIX = "msk_"
_KEY = re.compile(r"msk_[A-Za-z0-9_-]{43}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_CREDENTIAL = 512
LIMITS = ("quota_bytes", "quota_files", "uploads_per_minute")


class Malformed:
    """An Authorization header that is not ``Bearer <credential>`` (or is absurd)."""

    def __repr__(self) -> str:
        return "MALFORMED"


MALFORMED = Malformed()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def is_key_shaped(credential: str) -> bool:
    return _KEY.fullmatch(credential) is not None


def bearer(header: str | None) -> str | None | Malformed:
    """The credential in an Authorization header: None without one, MALFORMED when it is
    not ``Bearer <printable ASCII>`` of a sane length (RFC 6750 §2.1)."""
    if header is None:
        return None
    if len(header) > MAX_CREDENTIAL or not header.isascii():
        return MALFORMED
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or not credential.isprintable() \
            or " " in credential:
        return MALFORMED
    return credential


def query_credential(value: str | None) -> str | None | Malformed:
    """A credential passed as ``?token=`` (clients that cannot set headers)."""
    if value is None:
        return None
    if not value or len(value) > MAX_CREDENTIAL or not value.isascii() \
            or not value.isprintable() or " " in value:
        return MALFORMED
    return value


@dataclasses.dataclass(frozen=True)
class KeyInfo:
    id: int
    name: str
    scope: str
    revoked: bool


async def find_key(conn, credential: str) -> KeyInfo | None:
    """The key behind ``credential`` (revoked ones included), or None. Marks it used."""
    if not is_key_shaped(credential):
        return None
    digest = key_hash(credential)
    row = await Q.find_api_key.fetchrow(conn, key_hash=digest)
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        return None
    if row["touch_due"] and not row["revoked"]:
        await Q.touch_api_key.execute(conn, id=row["id"])
    return KeyInfo(row["id"], row["name"], row["scope"], row["revoked"])


class KeyRefused(ValueError):
    """A key cannot be created or revoked as asked (told to the operator as is)."""


async def create_key(conn, name: str, scope: str, audit=None,
                     limits: dict | None = None) -> str:
    """Create a key; return it (the only time it exists outside the caller's hands).
    ``audit`` (an audit entry) is written in the same transaction. ``limits``:
    quota_bytes, quota_files, uploads_per_minute (server/hygiene/quotas.py)."""

    if not NAME.fullmatch(name):
        raise KeyRefused("a key name is 1-100 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    if scope not in KEY_SCOPES:
        raise KeyRefused(f"scope must be one of {', '.join(KEY_SCOPES)}")
    key = new_key()
    try:
        async with conn.transaction():
            await Q.create_api_key.fetchrow(conn, name=name, scope=scope,
                                            key_hash=key_hash(key),
                                            **{k: (limits or {}).get(k) for k in LIMITS})
            if audit is not None:
                await audit.write(conn, outcome=f"ok: scope {scope}")
    except UniqueViolation:
        raise KeyRefused(f"a key named {name!r} exists; revoke it first") from None
    return key


async def revoke_key(conn, name: str, audit=None) -> bool:
    """Revoke the active key called ``name``; False when there is none."""
    async with conn.transaction():
        row = await Q.revoke_api_key.fetchrow(conn, name=name)
        if row is not None and audit is not None:
            await audit.write(conn)
    return row is not None


@dataclasses.dataclass(frozen=True)
class KeyListing:
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    bytes: int = 0
    files: int = 0
    quota_bytes: int | None = None
    quota_files: int | None = None
    uploads_per_minute: int | None = None


async def list_keys(conn) -> list[KeyListing]:
    return [KeyListing(**dict(r)) for r in await Q.list_api_keys.fetch(conn)]
