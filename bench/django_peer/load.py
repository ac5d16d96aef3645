"""Load files from a folder into the peer through the package's own storage.

    PEER_DATABASE_URL=... .venv/bin/python load.py FOLDER NAME [NAME ...]

Creates the table on first use, saves each file as the package does (base64 in the
TEXT column) and prints one line per file: the name to ask /get/?name= for, and the
seconds the save took.
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_site.settings")

import django  # noqa: E402

django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from db_file_storage.storage import DatabaseFileStorage  # noqa: E402

MIME = {".jpg": "image/jpeg", ".pdf": "application/pdf"}


def main() -> None:
    folder = Path(sys.argv[1])
    call_command("migrate", run_syncdb=True, verbosity=0)
    storage = DatabaseFileStorage()
    for name in sys.argv[2:]:
        content = ContentFile((folder / name).read_bytes())
        content.content_type = MIME.get(Path(name).suffix, "application/octet-stream")
        t = time.perf_counter()
        saved = storage.save(f"files.StoredFile/bytes/filename/mimetype/{name}", content)
        print(saved, f"{time.perf_counter() - t:.3f}", flush=True)


if __name__ == "__main__":
    main()
