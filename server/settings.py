"""Settings: read from the environment once, validated, then passed around as one object.

A bad value stops start-up with a message that names the variable, so a typo in a
deployment never turns into a half-working server. Secret values are held as
server.secret.Secret (masked in repr, logs and errors) and never echoed in a message.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from server.secret import Secret, secret_url


class SettingsError(ValueError):
    """A configuration variable has a value the service cannot use."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SecretKeys(tuple):
    """The URL-signing keys: a tuple of bytes that never shows its contents in a repr
    (settings get logged and printed in tracebacks)."""

    def __repr__(self) -> str:
        return f"SecretKeys(<{len(self)} hidden>)"


LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128"))


@dataclasses.dataclass(frozen=True)
class Settings:
    # None: the embedded PostgreSQL in data_dir. A Secret (its password masked); a str
    # given here is wrapped.
    database_url: Secret | None = None
    # Streaming replicas for reads of complete media (DATABASE_READ_URL, comma-separated).
    database_read_urls: tuple[Secret, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./var")
    max_upload_bytes: int = 2 * 1024**3
    chunk_bytes: int = 261_120             # 255 KiB, as GridFS; a multiple of 3
    pool_min: int = 2
    pool_max: int = 10
    pool_acquire_timeout: float = 30.0
    auto_migrate: bool = True
    # An 'uploading' row untouched this long belongs to a dead upload (a crashed
    # instance or a vanished client) and the janitor reclaims it.
    upload_stale_seconds: int = 3600
    janitor_interval_seconds: int = 300
    # Resumable (tus) uploads wait this long for their client, then the janitor takes them.
    tus_expiry_seconds: int = 86400
    read_ahead_chunks: int = 4
    # How long the serving path may reuse a file's metadata (0: ask the database on
    # every request). Bounds how long another instance's DELETE can go unnoticed by
    # HEAD and 304 answers here; a GET of deleted media is a 404 regardless.
    metadata_cache_seconds: float = 30.0
    # An upload whose client sends nothing for this long is cut (408) and removed: a
    # stalled or malicious client must not keep a request open forever.
    upload_idle_timeout: float = 120.0
    # On SIGTERM, requests in flight get this long to finish before they are cut (an
    # upload cut this way is aborted and removed). Below Docker's 10 s grace period, so
    # a stalled client cannot turn a clean stop into a SIGKILL.
    shutdown_timeout: float = 8.0
    # Instances beat this often; one silent for instance_dead_seconds is taken for dead
    # and its half-received uploads are reclaimed by the others.
    # Decoded chunks kept in memory by each process for short reads (0: off).
    cache_bytes: int = 64 * 1024 * 1024
    workers: int = 1                       # server processes sharing the port
    heartbeat_seconds: float = 15.0
    instance_dead_seconds: float = 60.0
    log_level: str = "INFO"
    log_format: str = "text"               # text (terminals) | json (one object per line)
    # Access control (server/security). Signed media URLs live this long; their expiry
    # is rounded up to a tenth of it so the same file keeps the same URL for a while.
    url_ttl_seconds: int = 86400
    # Empty: one key is generated once and kept in the database. The first signs, all
    # verify, so a key can be rotated without breaking the links already handed out.
    signing_keys: SecretKeys = SecretKeys()
    public_read: bool = False
    cors_origins: tuple[str, ...] = ()
    audit_reads: bool = False
    trusted_proxies: tuple[Network, ...] = ()
    metrics_allow: tuple[Network, ...] = LOOPBACK

    def __post_init__(self) -> None:
        if isinstance(self.database_url, str):
            object.__setattr__(self, "database_url", secret_url(self.database_url))
        object.__setattr__(self, "database_read_urls", tuple(
            secret_url(u) if isinstance(u, str) else u for u in self.database_read_urls))
    # Limits against abuse (README "Limits and abuse"); each bounds what one client or
    # one stalled peer can hold on to.
    send_timeout: float = 60.0              # a response write with no progress this long
    upload_min_rate: int = 1024             # bytes/s an upload must average ...
    upload_rate_window: float = 60.0        # ... over each window this long
    max_concurrent_uploads: int = 256       # per instance; the next gets 503
    db_command_timeout: float = 30.0        # every statement, client side
    max_range_chunks: int = 8               # chunk reads one multi-range request may cost


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    # Blank counts as unset, as for every other variable: HOST="" would otherwise bind
    # every interface, and LOG_LEVEL="" would stop start-up over nothing.
    raw = (env.get(name) or "").strip()
    return raw or default


def _number(env: Mapping[str, str], name: str, default, lo, hi, parse, what: str):
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
    if not lo <= value <= hi:   # also refuses nan
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, lo: int, hi: int) -> int:
    return _number(env, name, default, lo, hi, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float) -> float:
    return _number(env, name, default, lo, hi, float, "a number")


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _networks(env: Mapping[str, str], name: str, default: tuple[Network, ...]
              ) -> tuple[Network, ...]:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        return tuple(ipaddress.ip_network(p.strip(), strict=False)
                     for p in raw.split(",") if p.strip())
    except ValueError as e:
        raise SettingsError(f"{name} must be comma-separated addresses or CIDRs: {e}") from None


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = (env.get("MEDIA_CORS_ORIGINS") or "").strip()
    found = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in found:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError(f"MEDIA_CORS_ORIGINS: {origin!r} is not an origin "
                                "(scheme://host[:port], or *)")
    return found


def _signing_keys(env: Mapping[str, str]) -> SecretKeys:
    raw = (env.get("MEDIA_SIGNING_KEYS") or "").strip()
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    for i, key in enumerate(keys, 1):
        # Never echo a key back, not even a bad one: error messages get logged.
        if len(key) < 32 or not key.isascii() or not key.isprintable():
            raise SettingsError(f"MEDIA_SIGNING_KEYS: key #{i} must be at least 32 "
                                "printable ASCII characters")
    return SecretKeys(k.encode() for k in keys)


def _database_url(env: Mapping[str, str]) -> Secret | None:
    # Never quote the value in an error: it holds a password.
    raw = (env.get("DATABASE_URL") or "").strip()
    if not raw:
        return None
    if not raw.startswith(("postgres://", "postgresql://")):
        raise SettingsError("DATABASE_URL must start with postgresql:// or postgres://")
    try:
        urlsplit(raw).port   # raises on a port that is not a number in range
    except ValueError:
        raise SettingsError("DATABASE_URL has an invalid port") from None
    return secret_url(raw)


def _read_urls(env: Mapping[str, str]) -> tuple[Secret, ...]:
    # Never quote a value in an error: each may hold a password.
    urls = tuple(u.strip() for u in (env.get("DATABASE_READ_URL") or "").split(",")
                 if u.strip())
    for u in urls:
        if not u.startswith(("postgres://", "postgresql://")):
            raise SettingsError("DATABASE_READ_URL must be postgresql:// URLs, "
                                "separated by commas")
        try:
            urlsplit(u).port
        except ValueError:
            raise SettingsError("DATABASE_READ_URL has an invalid port") from None
    return tuple(secret_url(u) for u in urls)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: ``os.environ``); raise SettingsError."""
    env = os.environ if env is None else env
    chunk = _int(env, "MEDIA_CHUNK_BYTES", Settings.chunk_bytes, lo=3, hi=64 * 1024 * 1024)
    if chunk % 3:
        raise SettingsError(
            f"MEDIA_CHUNK_BYTES must be a multiple of 3 so that each chunk's base64 "
            f"stands alone, got {chunk}")
    pool_min = _int(env, "DB_POOL_MIN", Settings.pool_min, lo=0, hi=1000)
    pool_max = _int(env, "DB_POOL_MAX", Settings.pool_max, lo=1, hi=1000)
    if pool_min > pool_max:
        raise SettingsError(f"DB_POOL_MIN ({pool_min}) must not exceed DB_POOL_MAX ({pool_max})")
    level = _str(env, "LOG_LEVEL", Settings.log_level).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    heartbeat = _float(env, "MEDIA_HEARTBEAT_SECONDS", Settings.heartbeat_seconds,
                       lo=0.1, hi=3600)
    dead = _float(env, "MEDIA_INSTANCE_DEAD_SECONDS", Settings.instance_dead_seconds,
                  lo=1, hi=86400)
    if dead < 2 * heartbeat:
        raise SettingsError(f"MEDIA_INSTANCE_DEAD_SECONDS ({dead}) must be at least twice "
                            f"MEDIA_HEARTBEAT_SECONDS ({heartbeat}): one late beat is not death")
    log_format = _str(env, "LOG_FORMAT", Settings.log_format).lower()
    if log_format not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT must be text or json, got {log_format!r}")
    data_dir = _str(env, "MEDIA_DATA_DIR", str(Settings.data_dir))
    return Settings(
        database_url=_database_url(env),
        database_read_urls=_read_urls(env),
        host=_str(env, "HOST", Settings.host),
        # Not 0: the OS would pick a port and nothing would tell the proxy which.
        port=_int(env, "PORT", Settings.port, lo=1, hi=65535),
        data_dir=Path(data_dir),
        max_upload_bytes=_int(env, "MEDIA_MAX_UPLOAD_BYTES", Settings.max_upload_bytes,
                              lo=1, hi=2**62),
        chunk_bytes=chunk,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_acquire_timeout=_float(env, "DB_POOL_ACQUIRE_TIMEOUT",
                                    Settings.pool_acquire_timeout, lo=0.1, hi=3600),
        auto_migrate=_bool(env, "MEDIA_AUTO_MIGRATE", Settings.auto_migrate),
        upload_stale_seconds=_int(env, "MEDIA_UPLOAD_STALE_SECONDS",
                                  Settings.upload_stale_seconds, lo=1, hi=30 * 86400),
        tus_expiry_seconds=_int(env, "MEDIA_TUS_EXPIRY_SECONDS", Settings.tus_expiry_seconds,
                                lo=1, hi=30 * 86400),
        janitor_interval_seconds=_int(env, "MEDIA_JANITOR_INTERVAL_SECONDS",
                                      Settings.janitor_interval_seconds, lo=1, hi=86400),
        read_ahead_chunks=_int(env, "MEDIA_READ_AHEAD_CHUNKS", Settings.read_ahead_chunks,
                               lo=1, hi=64),
        metadata_cache_seconds=_float(env, "MEDIA_METADATA_CACHE_SECONDS",
                                      Settings.metadata_cache_seconds, lo=0, hi=86400),
        upload_idle_timeout=_float(env, "MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS",
                                   Settings.upload_idle_timeout, lo=1, hi=86400),
        shutdown_timeout=_float(env, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS",
                                Settings.shutdown_timeout, lo=0, hi=3600),
        cache_bytes=_int(env, "MEDIA_CACHE_BYTES", Settings.cache_bytes, lo=0, hi=2**40),
        workers=_int(env, "MEDIA_WORKERS", Settings.workers, lo=1, hi=256),
        heartbeat_seconds=heartbeat,
        instance_dead_seconds=dead,
        log_level=level,
        log_format=log_format,
        url_ttl_seconds=_int(env, "MEDIA_URL_TTL_SECONDS", Settings.url_ttl_seconds,
                             lo=10, hi=365 * 86400),
        signing_keys=_signing_keys(env),
        public_read=_bool(env, "MEDIA_PUBLIC_READ", Settings.public_read),
        cors_origins=_origins(env),
        audit_reads=_bool(env, "MEDIA_AUDIT_READS", Settings.audit_reads),
        trusted_proxies=_networks(env, "MEDIA_TRUSTED_PROXIES", ()),
        metrics_allow=_networks(env, "MEDIA_METRICS_ALLOW", LOOPBACK),
        send_timeout=_float(env, "MEDIA_SEND_TIMEOUT_SECONDS", Settings.send_timeout,
                            lo=1, hi=86400),
        upload_min_rate=_int(env, "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND",
                             Settings.upload_min_rate, lo=0, hi=2**40),
        upload_rate_window=_float(env, "MEDIA_UPLOAD_RATE_WINDOW_SECONDS",
                                  Settings.upload_rate_window, lo=1, hi=86400),
        max_concurrent_uploads=_int(env, "MEDIA_MAX_CONCURRENT_UPLOADS",
                                    Settings.max_concurrent_uploads, lo=1, hi=100_000),
        db_command_timeout=_float(env, "DB_COMMAND_TIMEOUT_SECONDS",
                                  Settings.db_command_timeout, lo=0.1, hi=86400),
        max_range_chunks=_int(env, "MEDIA_MAX_RANGE_CHUNKS", Settings.max_range_chunks,
                              lo=1, hi=100_000),
    )
