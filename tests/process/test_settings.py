"""Settings: every variable parsed, every bad value refused with its name, in-process
through load_settings and through run.py (a quick non-zero exit, no traceback)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
import ipaddress
from pathlib import Path

import pytest

from server.retention.rules import RetentionRule
from server.secret import secret_url
from server.settings import (SecretKeys, Settings, SettingsError, load_settings,
                             replace_settings)
from tests.procs import SETTINGS_VARS, run_cli


def test_defaults():
    s = load_settings({})
    assert s == Settings()
    assert s.db.url is None
    assert (s.server.host, s.server.port, s.db.data_dir) == ("127.0.0.1", 8080, Path("./var"))
    assert s.store.chunk_bytes == 261_120 and s.store.chunk_bytes % 3 == 0
    assert (s.db.pool_min, s.db.pool_max, s.db.pool_acquire_timeout) == (2, 10, 30.0)
    assert s.db.auto_migrate is True
    assert s.server.log_level == "INFO"
    assert s.server.shutdown_timeout < 10   # inside Docker's grace period before its SIGKILL


@pytest.mark.parametrize("cores,workers,threads", [
    (1, 1, 1), (2, 2, 1), (3, 3, 1), (4, 4, 1), (6, 4, 1), (8, 4, 2), (64, 4, 16)])
def test_workers_default_to_the_cores_and_share_them(monkeypatch, cores, workers, threads):
    import os
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    s = load_settings({})
    assert (s.server.workers, s.processing.concurrency) == (workers, threads)
    assert s == Settings()
    # Set by hand, the other follows: the cores shared among the workers asked for.
    s = load_settings({"MEDIA_WORKERS": "1"})
    assert (s.server.workers, s.processing.concurrency) == (1, cores)


def test_blank_values_mean_the_default():
    env = {name: "   " for name in SETTINGS_VARS}
    assert load_settings(env) == Settings()


PARSED = [
    # (variable, raw value, section.field of Settings, expected value)
    ("DATABASE_URL", "postgresql://u:p@db:5432/chat", "db.url",
     secret_url("postgresql://u:p@db:5432/chat")),
    ("DATABASE_URL", " postgres://db/chat ", "db.url", secret_url("postgres://db/chat")),
    ("DATABASE_URL", "postgresql://postgres:@/postgres?host=/tmp/pg", "db.url",
     secret_url("postgresql://postgres:@/postgres?host=/tmp/pg")),
    ("HOST", "0.0.0.0", "server.host", "0.0.0.0"),
    ("HOST", " ::1 ", "server.host", "::1"),
    ("PORT", "9000", "server.port", 9000),
    ("PORT", " 65535 ", "server.port", 65535),
    ("PORT", "1", "server.port", 1),
    ("MEDIA_DATA_DIR", "/srv/media", "db.data_dir", Path("/srv/media")),
    ("MEDIA_MAX_UPLOAD_BYTES", "2147483648", "uploads.max_bytes", 2**31),
    ("MEDIA_MAX_UPLOAD_BYTES", "1", "uploads.max_bytes", 1),
    ("MEDIA_CHUNK_BYTES", "3072", "store.chunk_bytes", 3072),
    ("MEDIA_CHUNK_BYTES", "3", "store.chunk_bytes", 3),
    ("DB_POOL_MIN", "0", "db.pool_min", 0),
    ("DB_POOL_MIN", "10", "db.pool_min", 10),
    ("DB_POOL_MAX", "50", "db.pool_max", 50),
    ("DB_POOL_ACQUIRE_TIMEOUT", "5", "db.pool_acquire_timeout", 5.0),
    ("DB_POOL_ACQUIRE_TIMEOUT", "0.25", "db.pool_acquire_timeout", 0.25),
    ("MEDIA_AUTO_MIGRATE", "false", "db.auto_migrate", False),
    ("MEDIA_AUTO_MIGRATE", "0", "db.auto_migrate", False),
    ("MEDIA_AUTO_MIGRATE", "No", "db.auto_migrate", False),
    ("MEDIA_AUTO_MIGRATE", "OFF", "db.auto_migrate", False),
    ("MEDIA_AUTO_MIGRATE", "true", "db.auto_migrate", True),
    ("MEDIA_AUTO_MIGRATE", " YES ", "db.auto_migrate", True),
    ("MEDIA_AUTO_MIGRATE", "1", "db.auto_migrate", True),
    ("MEDIA_AUTO_MIGRATE", "on", "db.auto_migrate", True),
    ("MEDIA_UPLOAD_STALE_SECONDS", "600", "uploads.stale_seconds", 600),
    ("MEDIA_TUS_EXPIRY_SECONDS", "3600", "tus.expiry_seconds", 3600),
    ("MEDIA_TUS_LEASE_SECONDS", "30", "tus.lease_seconds", 30.0),
    ("MEDIA_TUS_LEASE_SECONDS", "2.5", "tus.lease_seconds", 2.5),
    ("MEDIA_TUS_CHECKSUM_MAX_BYTES", "1048576", "tus.checksum_max_bytes", 1048576),
    ("MEDIA_TUS_MAX_OPEN_PER_CLIENT", "5", "tus.max_open_per_client", 5),
    ("MEDIA_JANITOR_INTERVAL_SECONDS", "30", "workers.janitor_interval_seconds", 30),
    ("MEDIA_ORPHAN_GRACE_SECONDS", "0", "store.orphan_grace_seconds", 0),
    ("MEDIA_READ_AHEAD_CHUNKS", "8", "store.read_ahead_chunks", 8),
    ("MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS", "30", "uploads.idle_timeout", 30.0),
    ("MEDIA_METADATA_CACHE_SECONDS", "0", "store.metadata_cache_seconds", 0.0),
    ("MEDIA_METADATA_CACHE_SECONDS", "5.5", "store.metadata_cache_seconds", 5.5),
    ("MEDIA_SHUTDOWN_TIMEOUT_SECONDS", "2.5", "server.shutdown_timeout", 2.5),
    ("MEDIA_SHUTDOWN_TIMEOUT_SECONDS", "0", "server.shutdown_timeout", 0.0),
    ("LOG_LEVEL", "debug", "server.log_level", "DEBUG"),
    ("LOG_LEVEL", " warning ", "server.log_level", "WARNING"),
    ("LOG_LEVEL", "ERROR", "server.log_level", "ERROR"),
    ("MEDIA_PROCESSING", "false", "processing.enabled", False),
    ("MEDIA_ALLOWED_TYPES", "image/jpeg, IMAGE/PNG,text/csv", "processing.allowed_types",
     frozenset({"image/jpeg", "image/png", "text/csv"})),
    ("MEDIA_MAX_IMAGE_BYTES", "1048576", "processing.max_image_bytes", 1048576),
    ("MEDIA_MAX_VIDEO_BYTES", "1000", "processing.max_video_bytes", 1000),
    ("MEDIA_MAX_AUDIO_BYTES", "1000", "processing.max_audio_bytes", 1000),
    ("MEDIA_MAX_DOCUMENT_BYTES", "1000", "processing.max_document_bytes", 1000),
    ("MEDIA_IMAGE_COMPRESS", "off", "processing.image_compress", False),
    ("MEDIA_IMAGE_QUALITY", "100", "processing.image_quality", 100),
    ("MEDIA_IMAGE_MAX_EDGE", "1280", "processing.image_max_edge", 1280),
    ("MEDIA_KEEP_IMAGE_METADATA", "true", "processing.keep_image_metadata", True),
    ("MEDIA_KEEP_VIDEO_METADATA", "true", "processing.keep_video_metadata", True),
    ("MEDIA_MAX_IMAGE_PIXELS", "40000000", "processing.max_image_pixels", 40_000_000),
    ("MEDIA_PROCESS_CONCURRENCY", "3", "processing.concurrency", 3),
    ("MEDIA_PROCESSING_TIMEOUT_SECONDS", "2.5", "processing.timeout_seconds", 2.5),
    ("MEDIA_PROCESSING_MEMORY_BYTES", "268435456", "processing.memory_bytes", 268435456),
    ("MEDIA_THUMBNAIL_SIZES", "32x32-crop, 96x96-crop,1024x768-scale",
     "processing.thumbnail_sizes", ((32, 32, "crop"), (96, 96, "crop"), (1024, 768, "scale"))),
    ("MEDIA_THUMBNAIL_EAGER", "96x96-crop", "processing.thumbnail_eager", ((96, 96, "crop"),)),
    ("MEDIA_THUMBNAIL_EAGER", "none", "processing.thumbnail_eager", ()),
    ("MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS", "1000000", "processing.thumbnail_max_source_pixels",
     1_000_000),
    ("MEDIA_THUMBNAIL_MAX_ANIMATED_BYTES", "0", "processing.thumbnail_max_animated_bytes", 0),
    ("ZAPI_BASE_URL", "http://127.0.0.1:9999/", "zapi.base_url", "http://127.0.0.1:9999"),
    ("ZAPI_INSTANCE_ID", "3C0FFEE", "zapi.instance_id", "3C0FFEE"),
    ("ZAPI_TOKEN", " T0KEN ", "zapi.token", "T0KEN"),
    ("ZAPI_CLIENT_TOKEN", "F00d-bar_1", "zapi.client_token", "F00d-bar_1"),
    ("ZAPI_WEBHOOK_SECRET", "s" * 24, "zapi.webhook_secret", "s" * 24),
    ("ZAPI_MEDIA_MODE", "URL", "zapi.media_mode", "url"),
    ("PUBLIC_BASE_URL", "https://media.example.com/", "zapi.public_base_url",
     "https://media.example.com"),
    ("ZAPI_TIMEOUT_SECONDS", "60", "zapi.timeout", 60.0),
    ("ZAPI_MAX_ATTEMPTS", "1", "zapi.max_attempts", 1),
    ("ZAPI_RETRY_BASE_SECONDS", "0.5", "zapi.retry_base", 0.5),
    ("ZAPI_RETRY_UNKNOWN", "true", "zapi.retry_unknown", True),
    ("ZAPI_MAX_CONCURRENCY", "4", "zapi.max_concurrency", 4),
    ("ZAPI_LEASE_SECONDS", "300", "zapi.lease_seconds", 300.0),
    ("MEDIA_IMPORT_ALLOW_HTTP", "yes", "import_url.allow_http", True),
    ("MEDIA_IMPORT_HOSTS", " Media.Z-API.io , *.whatsapp.net ", "import_url.hosts",
     ("media.z-api.io", "*.whatsapp.net")),
    ("MEDIA_IMPORT_ALLOW_PRIVATE", "1", "import_url.allow_private", True),
    ("MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS", "2.5", "import_url.connect_timeout", 2.5),
    ("MEDIA_IMPORT_TIMEOUT_SECONDS", "60", "import_url.timeout", 60.0),
    ("LOG_FORMAT", "JSON", "server.log_format", "json"),
    ("MEDIA_HEARTBEAT_SECONDS", "5", "workers.heartbeat_seconds", 5.0),
    ("MEDIA_WORKERS", "4", "server.workers", 4),
    ("DATABASE_READ_URL", "postgresql://r1/chat, postgresql://r2/chat", "db.read_urls",
     (secret_url("postgresql://r1/chat"), secret_url("postgresql://r2/chat"))),
    ("MEDIA_CACHE_BYTES", "0", "store.cache_bytes", 0),
    ("MEDIA_INSTANCE_DEAD_SECONDS", "45", "workers.instance_dead_seconds", 45.0),
    ("MEDIA_RETENTION", " Video:365d, *:260w ,audio:48h", "workers.retention",
     (RetentionRule("video", timedelta(days=365)), RetentionRule("audio", timedelta(hours=48)),
      RetentionRule("*", timedelta(weeks=260)))),
    ("MEDIA_URL_TTL_SECONDS", "3600", "security.url_ttl_seconds", 3600),
    ("MEDIA_SIGNING_KEYS", "a" * 32, "security.signing_keys", SecretKeys([b"a" * 32])),
    ("MEDIA_SIGNING_KEYS", f" {'n' * 40} , {'o' * 32} ", "security.signing_keys",
     SecretKeys([b"n" * 40, b"o" * 32])),
    ("MEDIA_PUBLIC_READ", "true", "security.public_read", True),
    ("MEDIA_CORS_ORIGINS", "https://chat.example.com, http://localhost:3000/",
     "security.cors_origins", ("https://chat.example.com", "http://localhost:3000")),
    ("MEDIA_CORS_ORIGINS", "*", "security.cors_origins", ("*",)),
    ("MEDIA_AUDIT_READS", "yes", "security.audit_reads", True),
    ("MEDIA_AUDIT_RETENTION_DAYS", "30", "security.audit_retention_days", 30),
    ("MEDIA_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1", "security.trusted_proxies",
     (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))),
    ("MEDIA_METRICS_ALLOW", "192.168.1.0/24,::1", "security.metrics_allow",
     (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("::1/128"))),
    ("MEDIA_SEND_TIMEOUT_SECONDS", "5", "server.send_timeout", 5.0),
    ("MEDIA_HEADER_TIMEOUT_SECONDS", "4", "server.header_timeout", 4.0),
    ("MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND", "0", "uploads.min_rate", 0),
    ("MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND", "4096", "uploads.min_rate", 4096),
    ("MEDIA_UPLOAD_RATE_WINDOW_SECONDS", "10", "uploads.rate_window", 10.0),
    ("MEDIA_MAX_CONCURRENT_UPLOADS", "8", "uploads.max_concurrent", 8),
    ("DB_COMMAND_TIMEOUT_SECONDS", "2.5", "db.command_timeout", 2.5),
    ("DB_ADMIN_COMMAND_TIMEOUT_SECONDS", "7200", "db.admin_command_timeout", 7200.0),
    ("DB_ADMIN_COMMAND_TIMEOUT_SECONDS", "0", "db.admin_command_timeout", None),
    ("MEDIA_MAX_RANGE_CHUNKS", "32", "store.max_range_chunks", 32),
    ("MEDIA_LEGACY_DIR", "/tmp", "legacy.dir", Path("/tmp")),
    ("MEDIA_LEGACY_SUNSET", "2027-01-31", "legacy.sunset",
     datetime(2027, 1, 31, tzinfo=timezone.utc)),
    ("MEDIA_LEGACY_SUNSET", "2027-01-31T12:30:00Z", "legacy.sunset",
     datetime(2027, 1, 31, 12, 30, tzinfo=timezone.utc)),
    ("MEDIA_LEGACY_SUNSET", "2027-01-31T12:30:00-03:00", "legacy.sunset",
     datetime(2027, 1, 31, 15, 30, tzinfo=timezone.utc)),
    ("MEDIA_LEGACY_DEPRECATED_AT", "2026-11-01", "legacy.deprecated_at",
     datetime(2026, 11, 1, tzinfo=timezone.utc)),
    ("MEDIA_LEGACY_DEPRECATED_AT", "2026-11-01T09:00:00+01:00", "legacy.deprecated_at",
     datetime(2026, 11, 1, 8, tzinfo=timezone.utc)),
    ("MEDIA_SCAN_CLAMD", "unix:///run/clamav/clamd.ctl", "scan.clamd",
     "unix:///run/clamav/clamd.ctl"),
    ("MEDIA_SCAN_CLAMD", " tcp://127.0.0.1:3310 ", "scan.clamd", "tcp://127.0.0.1:3310"),
    ("MEDIA_SCAN_TIMEOUT_SECONDS", "2.5", "scan.timeout_seconds", 2.5),
    ("MEDIA_SCAN_FAIL", "open", "scan.fail_open", True),
    ("MEDIA_SCAN_FAIL", " Closed ", "scan.fail_open", False),
]

# Variables that are only valid with others: (extra environment, the fields it sets).
_CREDS = {"ZAPI_INSTANCE_ID": "i", "ZAPI_TOKEN": "t", "ZAPI_CLIENT_TOKEN": "c"}
COMPANIONS = {
    name: ({k: v for k, v in _CREDS.items() if k != name},
           {f"zapi__{k[5:].lower()}": v for k, v in _CREDS.items() if k != name})
    for name in _CREDS}
COMPANIONS["ZAPI_MEDIA_MODE"] = ({"PUBLIC_BASE_URL": "https://m.example"},
                                 {"zapi__public_base_url": "https://m.example"})


def test_the_tables_cover_every_variable():
    # SETTINGS_VARS is what the process tests scrub from the environment: keep it, and
    # these tables, in step with load_settings.
    assert {name for name, *_ in PARSED} == set(SETTINGS_VARS)
    every_field = {f"{section.name}.{f.name}" for section in dataclasses.fields(Settings)
                   for f in dataclasses.fields(getattr(Settings(), section.name))}
    assert every_field == {attr for _, _, attr, _ in PARSED}


@pytest.mark.parametrize("name,raw,attr,expected", PARSED,
                         ids=[f"{n}={r.strip()}" for n, r, _, _ in PARSED])
def test_each_variable_is_parsed(name, raw, attr, expected):
    extra_env, extra_fields = COMPANIONS.get(name, ({}, {}))
    s = load_settings({name: raw, **extra_env})
    section, field = attr.split(".")
    assert getattr(getattr(s, section), field) == expected
    # Only that field (and its companions) moved.
    assert s == replace_settings(Settings(), **{f"{section}__{field}": expected, **extra_fields})


def test_credentials_stay_out_of_repr_and_errors():
    s = load_settings({"ZAPI_INSTANCE_ID": "INSTANCE123", "ZAPI_TOKEN": "PATHTOKEN456",
                       "ZAPI_CLIENT_TOKEN": "CLIENTTOKEN789",
                       "ZAPI_WEBHOOK_SECRET": "WEBHOOKSECRET0123456"})
    assert s.zapi.enabled
    for secret in ("INSTANCE123", "PATHTOKEN456", "CLIENTTOKEN789", "WEBHOOKSECRET0123456"):
        assert secret not in repr(s) and secret not in str(s)
    with pytest.raises(SettingsError) as e:
        load_settings({"ZAPI_TOKEN": "PATHTOKEN456"})
    assert "ZAPI_INSTANCE_ID" in str(e.value) and "PATHTOKEN456" not in str(e.value)
    with pytest.raises(SettingsError) as e:
        load_settings({"ZAPI_WEBHOOK_SECRET": "short/secret"})
    assert "short/secret" not in str(e.value)


def test_sending_is_off_without_credentials():
    assert not load_settings({}).zapi.enabled


BAD = [
    # (env, the variable the message must name)
    ({"MEDIA_THUMBNAIL_SIZES": "96x96"}, "MEDIA_THUMBNAIL_SIZES"),
    ({"MEDIA_THUMBNAIL_SIZES": "96x96-stretch"}, "MEDIA_THUMBNAIL_SIZES"),
    ({"MEDIA_THUMBNAIL_SIZES": "10000x10-crop"}, "MEDIA_THUMBNAIL_SIZES"),
    ({"MEDIA_THUMBNAIL_SIZES": "none"}, "MEDIA_THUMBNAIL_SIZES"),
    ({"MEDIA_THUMBNAIL_EAGER": "64x64-crop"}, "MEDIA_THUMBNAIL_EAGER"),
    ({"MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS": "0"}, "MEDIA_THUMBNAIL_MAX_SOURCE_PIXELS"),
    ({"MEDIA_SCAN_CLAMD": "clamd.ctl"}, "MEDIA_SCAN_CLAMD"),
    ({"MEDIA_SCAN_CLAMD": "tcp://127.0.0.1"}, "MEDIA_SCAN_CLAMD"),
    ({"MEDIA_SCAN_CLAMD": "unix://relative.sock"}, "MEDIA_SCAN_CLAMD"),
    ({"MEDIA_SCAN_FAIL": "maybe"}, "MEDIA_SCAN_FAIL"),
    ({"MEDIA_SCAN_TIMEOUT_SECONDS": "0"}, "MEDIA_SCAN_TIMEOUT_SECONDS"),
    ({"PORT": "eighty"}, "PORT"),
    ({"MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS": "0"}, "MEDIA_UPLOAD_IDLE_TIMEOUT_SECONDS"),
    ({"MEDIA_METADATA_CACHE_SECONDS": "-1"}, "MEDIA_METADATA_CACHE_SECONDS"),
    ({"PORT": "80.5"}, "PORT"),
    ({"PORT": "65536"}, "PORT"),
    ({"PORT": "-1"}, "PORT"),
    ({"PORT": "0"}, "PORT"),            # a random port nobody could find
    ({"MEDIA_CHUNK_BYTES": "1000"}, "MEDIA_CHUNK_BYTES"),   # not a multiple of 3
    ({"MEDIA_CHUNK_BYTES": "262144"}, "MEDIA_CHUNK_BYTES"),  # 256 KiB: not a multiple of 3
    ({"MEDIA_CHUNK_BYTES": "0"}, "MEDIA_CHUNK_BYTES"),
    ({"MEDIA_CHUNK_BYTES": "255K"}, "MEDIA_CHUNK_BYTES"),
    ({"MEDIA_CHUNK_BYTES": str(96 * 1024 * 1024)}, "MEDIA_CHUNK_BYTES"),
    ({"DB_POOL_MIN": "11", "DB_POOL_MAX": "10"}, "DB_POOL_MIN"),
    ({"DB_POOL_MIN": "3", "DB_POOL_MAX": "2"}, "DB_POOL_MAX"),
    ({"DB_POOL_MAX": "0"}, "DB_POOL_MAX"),
    ({"DB_POOL_MIN": "-1"}, "DB_POOL_MIN"),
    ({"DB_POOL_MAX": "lots"}, "DB_POOL_MAX"),
    ({"DB_POOL_ACQUIRE_TIMEOUT": "soon"}, "DB_POOL_ACQUIRE_TIMEOUT"),
    ({"DB_POOL_ACQUIRE_TIMEOUT": "0"}, "DB_POOL_ACQUIRE_TIMEOUT"),
    ({"DB_POOL_ACQUIRE_TIMEOUT": "nan"}, "DB_POOL_ACQUIRE_TIMEOUT"),
    ({"DB_POOL_ACQUIRE_TIMEOUT": "inf"}, "DB_POOL_ACQUIRE_TIMEOUT"),
    ({"DATABASE_URL": "mysql://db/chat"}, "DATABASE_URL"),
    ({"DATABASE_URL": "db.example.com:5432/chat"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql+psycopg://db/chat"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://u:pw@db:port/chat"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://u:pw@db:70000/chat"}, "DATABASE_URL"),
    ({"MEDIA_AUTO_MIGRATE": "maybe"}, "MEDIA_AUTO_MIGRATE"),
    ({"MEDIA_ALLOWED_TYPES": "image/jpeg,text/html"}, "MEDIA_ALLOWED_TYPES"),
    ({"MEDIA_ALLOWED_TYPES": " , "}, "MEDIA_ALLOWED_TYPES"),
    ({"MEDIA_MAX_IMAGE_BYTES": "0"}, "MEDIA_MAX_IMAGE_BYTES"),
    ({"MEDIA_MAX_VIDEO_BYTES": "1G"}, "MEDIA_MAX_VIDEO_BYTES"),
    ({"MEDIA_MAX_AUDIO_BYTES": "-5"}, "MEDIA_MAX_AUDIO_BYTES"),
    ({"MEDIA_MAX_DOCUMENT_BYTES": "x"}, "MEDIA_MAX_DOCUMENT_BYTES"),
    ({"MEDIA_IMAGE_COMPRESS": "sometimes"}, "MEDIA_IMAGE_COMPRESS"),
    ({"MEDIA_IMAGE_QUALITY": "0"}, "MEDIA_IMAGE_QUALITY"),
    ({"MEDIA_IMAGE_QUALITY": "101"}, "MEDIA_IMAGE_QUALITY"),
    ({"MEDIA_IMAGE_MAX_EDGE": "8"}, "MEDIA_IMAGE_MAX_EDGE"),
    ({"MEDIA_KEEP_IMAGE_METADATA": "2"}, "MEDIA_KEEP_IMAGE_METADATA"),
    ({"MEDIA_KEEP_VIDEO_METADATA": "maybe"}, "MEDIA_KEEP_VIDEO_METADATA"),
    ({"MEDIA_MAX_IMAGE_PIXELS": "0"}, "MEDIA_MAX_IMAGE_PIXELS"),
    ({"MEDIA_PROCESS_CONCURRENCY": "0"}, "MEDIA_PROCESS_CONCURRENCY"),
    ({"MEDIA_PROCESSING_TIMEOUT_SECONDS": "0"}, "MEDIA_PROCESSING_TIMEOUT_SECONDS"),
    ({"MEDIA_PROCESSING_MEMORY_BYTES": "1000"}, "MEDIA_PROCESSING_MEMORY_BYTES"),
    ({"MEDIA_PROCESSING": "perhaps"}, "MEDIA_PROCESSING"),
    ({"MEDIA_AUTO_MIGRATE": "2"}, "MEDIA_AUTO_MIGRATE"),
    ({"MEDIA_AUTO_MIGRATE": "y"}, "MEDIA_AUTO_MIGRATE"),
    ({"MEDIA_MAX_UPLOAD_BYTES": "0"}, "MEDIA_MAX_UPLOAD_BYTES"),
    ({"MEDIA_MAX_UPLOAD_BYTES": "2GB"}, "MEDIA_MAX_UPLOAD_BYTES"),
    ({"MEDIA_UPLOAD_STALE_SECONDS": "0"}, "MEDIA_UPLOAD_STALE_SECONDS"),
    ({"MEDIA_TUS_EXPIRY_SECONDS": "0"}, "MEDIA_TUS_EXPIRY_SECONDS"),
    ({"MEDIA_TUS_EXPIRY_SECONDS": "1d"}, "MEDIA_TUS_EXPIRY_SECONDS"),
    ({"MEDIA_TUS_LEASE_SECONDS": "0.5"}, "MEDIA_TUS_LEASE_SECONDS"),
    ({"MEDIA_TUS_LEASE_SECONDS": "2m"}, "MEDIA_TUS_LEASE_SECONDS"),
    ({"MEDIA_TUS_CHECKSUM_MAX_BYTES": "0"}, "MEDIA_TUS_CHECKSUM_MAX_BYTES"),
    ({"MEDIA_TUS_CHECKSUM_MAX_BYTES": "64MiB"}, "MEDIA_TUS_CHECKSUM_MAX_BYTES"),
    ({"MEDIA_TUS_MAX_OPEN_PER_CLIENT": "0"}, "MEDIA_TUS_MAX_OPEN_PER_CLIENT"),
    ({"MEDIA_UPLOAD_STALE_SECONDS": str(31 * 86400)}, "MEDIA_UPLOAD_STALE_SECONDS"),
    ({"MEDIA_JANITOR_INTERVAL_SECONDS": "0"}, "MEDIA_JANITOR_INTERVAL_SECONDS"),
    ({"MEDIA_JANITOR_INTERVAL_SECONDS": "1h"}, "MEDIA_JANITOR_INTERVAL_SECONDS"),
    ({"MEDIA_ORPHAN_GRACE_SECONDS": "-1"}, "MEDIA_ORPHAN_GRACE_SECONDS"),
    ({"MEDIA_READ_AHEAD_CHUNKS": "0"}, "MEDIA_READ_AHEAD_CHUNKS"),
    ({"MEDIA_READ_AHEAD_CHUNKS": "65"}, "MEDIA_READ_AHEAD_CHUNKS"),
    ({"MEDIA_SHUTDOWN_TIMEOUT_SECONDS": "-1"}, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS"),
    ({"MEDIA_SHUTDOWN_TIMEOUT_SECONDS": "10s"}, "MEDIA_SHUTDOWN_TIMEOUT_SECONDS"),
    ({"MEDIA_SEND_TIMEOUT_SECONDS": "0"}, "MEDIA_SEND_TIMEOUT_SECONDS"),
    ({"MEDIA_HEADER_TIMEOUT_SECONDS": "0"}, "MEDIA_HEADER_TIMEOUT_SECONDS"),
    ({"MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND": "-1"}, "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND"),
    ({"MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND": "1k"}, "MEDIA_UPLOAD_MIN_RATE_BYTES_PER_SECOND"),
    ({"MEDIA_UPLOAD_RATE_WINDOW_SECONDS": "0"}, "MEDIA_UPLOAD_RATE_WINDOW_SECONDS"),
    ({"MEDIA_MAX_CONCURRENT_UPLOADS": "0"}, "MEDIA_MAX_CONCURRENT_UPLOADS"),
    ({"DB_COMMAND_TIMEOUT_SECONDS": "0"}, "DB_COMMAND_TIMEOUT_SECONDS"),
    ({"DB_COMMAND_TIMEOUT_SECONDS": "forever"}, "DB_COMMAND_TIMEOUT_SECONDS"),
    ({"DB_ADMIN_COMMAND_TIMEOUT_SECONDS": "-1"}, "DB_ADMIN_COMMAND_TIMEOUT_SECONDS"),
    ({"DB_ADMIN_COMMAND_TIMEOUT_SECONDS": "1h"}, "DB_ADMIN_COMMAND_TIMEOUT_SECONDS"),
    ({"MEDIA_MAX_RANGE_CHUNKS": "0"}, "MEDIA_MAX_RANGE_CHUNKS"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"LOG_LEVEL": "CRITICAL"}, "LOG_LEVEL"),
    ({"ZAPI_BASE_URL": "api.z-api.io"}, "ZAPI_BASE_URL"),
    ({"ZAPI_BASE_URL": "ftp://api.z-api.io"}, "ZAPI_BASE_URL"),
    ({"ZAPI_INSTANCE_ID": "abc"}, "ZAPI_TOKEN"),
    ({"ZAPI_INSTANCE_ID": "abc", "ZAPI_TOKEN": "t"}, "ZAPI_CLIENT_TOKEN"),
    ({"ZAPI_INSTANCE_ID": "a/b", "ZAPI_TOKEN": "t", "ZAPI_CLIENT_TOKEN": "c"},
     "ZAPI_INSTANCE_ID"),
    ({"ZAPI_WEBHOOK_SECRET": "short"}, "ZAPI_WEBHOOK_SECRET"),
    ({"ZAPI_WEBHOOK_SECRET": "a-long-secret-with/slash"}, "ZAPI_WEBHOOK_SECRET"),
    ({"ZAPI_MEDIA_MODE": "link"}, "ZAPI_MEDIA_MODE"),
    ({"ZAPI_MEDIA_MODE": "url"}, "PUBLIC_BASE_URL"),
    ({"PUBLIC_BASE_URL": "media.example.com"}, "PUBLIC_BASE_URL"),
    ({"ZAPI_TIMEOUT_SECONDS": "0"}, "ZAPI_TIMEOUT_SECONDS"),
    ({"ZAPI_TIMEOUT_SECONDS": "100"}, "ZAPI_LEASE_SECONDS"),
    ({"ZAPI_LEASE_SECONDS": "10"}, "ZAPI_LEASE_SECONDS"),
    ({"ZAPI_MAX_ATTEMPTS": "0"}, "ZAPI_MAX_ATTEMPTS"),
    ({"ZAPI_RETRY_BASE_SECONDS": "-1"}, "ZAPI_RETRY_BASE_SECONDS"),
    ({"ZAPI_RETRY_UNKNOWN": "perhaps"}, "ZAPI_RETRY_UNKNOWN"),
    ({"ZAPI_MAX_CONCURRENCY": "0"}, "ZAPI_MAX_CONCURRENCY"),
    ({"MEDIA_IMPORT_ALLOW_HTTP": "sure"}, "MEDIA_IMPORT_ALLOW_HTTP"),
    ({"MEDIA_IMPORT_ALLOW_PRIVATE": "2"}, "MEDIA_IMPORT_ALLOW_PRIVATE"),
    ({"MEDIA_IMPORT_HOSTS": "good.com, bad host"}, "MEDIA_IMPORT_HOSTS"),
    ({"MEDIA_IMPORT_HOSTS": "http://x.com/"}, "MEDIA_IMPORT_HOSTS"),
    ({"MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS": "0"}, "MEDIA_IMPORT_CONNECT_TIMEOUT_SECONDS"),
    ({"MEDIA_IMPORT_TIMEOUT_SECONDS": "x"}, "MEDIA_IMPORT_TIMEOUT_SECONDS"),
    ({"LOG_FORMAT": "logfmt"}, "LOG_FORMAT"),
    ({"MEDIA_HEARTBEAT_SECONDS": "0"}, "MEDIA_HEARTBEAT_SECONDS"),
    ({"MEDIA_WORKERS": "0"}, "MEDIA_WORKERS"),
    ({"DATABASE_URL": "postgresql://db/a", "DATABASE_READ_URL": "mysql://r/a"},
     "DATABASE_READ_URL"),
    ({"DATABASE_READ_URL": "postgresql://u:pw@r:port/a"}, "DATABASE_READ_URL"),
    ({"MEDIA_CACHE_BYTES": "-1"}, "MEDIA_CACHE_BYTES"),
    ({"MEDIA_HEARTBEAT_SECONDS": "20", "MEDIA_INSTANCE_DEAD_SECONDS": "30"},
     "MEDIA_INSTANCE_DEAD_SECONDS"),
    ({"MEDIA_URL_TTL_SECONDS": "0"}, "MEDIA_URL_TTL_SECONDS"),
    ({"MEDIA_URL_TTL_SECONDS": "1d"}, "MEDIA_URL_TTL_SECONDS"),
    ({"MEDIA_SIGNING_KEYS": "short"}, "MEDIA_SIGNING_KEYS"),
    ({"MEDIA_SIGNING_KEYS": "a" * 32 + ",tooshort"}, "MEDIA_SIGNING_KEYS"),
    ({"MEDIA_SIGNING_KEYS": "é" * 40}, "MEDIA_SIGNING_KEYS"),
    ({"MEDIA_PUBLIC_READ": "sometimes"}, "MEDIA_PUBLIC_READ"),
    ({"MEDIA_CORS_ORIGINS": "chat.example.com"}, "MEDIA_CORS_ORIGINS"),
    ({"MEDIA_CORS_ORIGINS": "https://chat.example.com/app"}, "MEDIA_CORS_ORIGINS"),
    ({"MEDIA_AUDIT_READS": "2"}, "MEDIA_AUDIT_READS"),
    ({"MEDIA_AUDIT_RETENTION_DAYS": "0"}, "MEDIA_AUDIT_RETENTION_DAYS"),
    ({"MEDIA_RETENTION": "video:1y"}, "MEDIA_RETENTION"),
    ({"MEDIA_RETENTION": "videos:365d"}, "MEDIA_RETENTION"),
    ({"MEDIA_RETENTION": "365d"}, "MEDIA_RETENTION"),
    ({"MEDIA_TRUSTED_PROXIES": "10.0.0.0/33"}, "MEDIA_TRUSTED_PROXIES"),
    ({"MEDIA_TRUSTED_PROXIES": "proxy.local"}, "MEDIA_TRUSTED_PROXIES"),
    ({"MEDIA_METRICS_ALLOW": "everyone"}, "MEDIA_METRICS_ALLOW"),
    ({"MEDIA_LEGACY_DIR": "/no/such/folder"}, "MEDIA_LEGACY_DIR"),
    ({"MEDIA_LEGACY_DIR": "/etc/hostname"}, "MEDIA_LEGACY_DIR"),    # a file, not a folder
    ({"MEDIA_LEGACY_SUNSET": "next year"}, "MEDIA_LEGACY_SUNSET"),
    ({"MEDIA_LEGACY_SUNSET": "31/01/2027"}, "MEDIA_LEGACY_SUNSET"),
    ({"MEDIA_LEGACY_DEPRECATED_AT": "true"}, "MEDIA_LEGACY_DEPRECATED_AT"),
    ({"MEDIA_LEGACY_DEPRECATED_AT": "@1688169599"}, "MEDIA_LEGACY_DEPRECATED_AT"),
    # Gone before it was deprecated.
    ({"MEDIA_LEGACY_DEPRECATED_AT": "2027-02-01", "MEDIA_LEGACY_SUNSET": "2027-01-31"},
     "MEDIA_LEGACY_DEPRECATED_AT"),
]


@pytest.mark.parametrize("env,name", BAD, ids=[
    ",".join(f"{k}={v}" for k, v in env.items()) for env, _ in BAD])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError) as e:
        load_settings(env)
    assert name in str(e.value)


@pytest.mark.parametrize("url", ["mysql://admin:s3cret@db/chat",
                                 "postgresql://admin:s3cret@db:99999/chat",
                                 "postgresql://admin:s3cret@db:five/chat"])
def test_database_url_error_does_not_echo_the_url(url):
    # The URL may carry a password; the message names the variable, not its value.
    with pytest.raises(SettingsError) as e:
        load_settings({"DATABASE_URL": url})
    assert "DATABASE_URL" in str(e.value)
    assert "s3cret" not in str(e.value)


def test_signing_keys_never_show_in_a_repr_or_an_error():
    secret = "do-not-print-me-" + "x" * 20
    s = load_settings({"MEDIA_SIGNING_KEYS": secret})
    assert secret not in repr(s) and secret not in str(s)
    assert "SecretKeys(<1 hidden>)" in repr(s)
    with pytest.raises(SettingsError) as e:
        load_settings({"MEDIA_SIGNING_KEYS": secret + ",short-secret"})
    assert "short-secret" not in str(e.value)


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


# Through the process: a typo in a deployment stops start-up at once. DATABASE_URL points
# at a port nothing listens on, so a run.py that wrongly accepted the value could not
# start an embedded PostgreSQL either: it would fail with a traceback instead.
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"
CLI_BAD = [
    ({"PORT": "http"}, "PORT"),
    ({"MEDIA_CHUNK_BYTES": "1024"}, "MEDIA_CHUNK_BYTES"),
    ({"DB_POOL_MIN": "20", "DB_POOL_MAX": "5"}, "DB_POOL_MIN"),
    ({"DATABASE_URL": "sqlite:///media.db"}, "DATABASE_URL"),
    ({"MEDIA_AUTO_MIGRATE": "sometimes"}, "MEDIA_AUTO_MIGRATE"),
    ({"DB_POOL_ACQUIRE_TIMEOUT": "-5"}, "DB_POOL_ACQUIRE_TIMEOUT"),
]


@pytest.mark.parametrize("args", [(), ("migrate",), ("create-message",)],
                         ids=["serve", "migrate", "create-message"])
@pytest.mark.parametrize("env,name", CLI_BAD, ids=[n for _, n in CLI_BAD])
def test_run_py_refuses_bad_value(tmp_path, env, name, args):
    full = {"DATABASE_URL": UNREACHABLE, "MEDIA_DATA_DIR": str(tmp_path / "var"), **env}
    # The timeout only guards against a hang: a refused value stops before any import of
    # the server, any connection attempt or retry.
    res = run_cli(list(args), full, timeout=30)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert name in res.stderr
    assert res.stderr.startswith("configuration error:")
    assert "Traceback" not in res.stderr
    assert res.stdout == ""
    assert not (tmp_path / "var").exists()    # nothing was started


@pytest.mark.parametrize("args", [(), ("migrate",), ("create-message",)],
                         ids=["serve", "migrate", "create-message"])
@pytest.mark.parametrize("migrate", ["true", "false"])
def test_run_py_unreachable_database_is_one_line_not_a_traceback(tmp_path, args, migrate):
    res = run_cli(list(args), {"DATABASE_URL": UNREACHABLE, "MEDIA_AUTO_MIGRATE": migrate,
                               "MEDIA_DATA_DIR": str(tmp_path / "var")}, timeout=60)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "database error:" in res.stderr
    assert "Traceback" not in res.stderr


def test_run_py_port_in_use_is_one_line_not_a_traceback(tmp_path, db_dsn):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_cli([], {"DATABASE_URL": db_dsn, "MEDIA_AUTO_MIGRATE": "false",
                           "PORT": str(port), "MEDIA_DATA_DIR": str(tmp_path / "var")},
                      timeout=60)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr
