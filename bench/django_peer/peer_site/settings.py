"""A minimal Django project serving django-db-file-storage files (bench only)."""
import os
from urllib.parse import parse_qs, urlsplit

# The bench's PostgreSQL: the embedded one's Unix socket (?host=/dir), or loopback.
_db = urlsplit(os.environ["PEER_DATABASE_URL"])
_host = parse_qs(_db.query).get("host", [_db.hostname or "127.0.0.1"])[0]

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["files"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware",
              "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "peer_site.urls"
WSGI_APPLICATION = "peer_site.wsgi.application"
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": _db.path.lstrip("/"),
    "USER": _db.username or "postgres",
    "PASSWORD": _db.password or "",
    "HOST": _host,
    "PORT": _db.port or 5432,
    "CONN_MAX_AGE": 600,
}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
DEFAULT_FILE_STORAGE = "db_file_storage.storage.DatabaseFileStorage"
STORAGES = {"default": {"BACKEND": "db_file_storage.storage.DatabaseFileStorage"}}
DATA_UPLOAD_MAX_MEMORY_SIZE = None
