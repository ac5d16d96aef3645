"""A chat's legacy folder and the messages pointing at it, made for the legacy tests."""
from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

from server.ingest.receive import Limits
from server.legacy.importer import ImportOptions, ImportReport, import_legacy, import_policy
from server.processing.pipeline import Processing
from server.processing.policy import Policy
from server.settings import Settings, replace_settings
from tests.media import jpeg_bytes, png_bytes

LIMITS = Limits(max_bytes=64 * 1024**2, idle_timeout=30)


@dataclasses.dataclass
class Chat:
    folder: Path
    files: dict[str, bytes]          # legacy name -> bytes on disk
    messages: dict[str, int]         # label -> message id

    def sha(self, name: str) -> bytes:
        return hashlib.sha256(self.files[name]).digest()


async def chat_shape(conn) -> None:
    """The chat's own column on its messages table (test-harness DDL)."""
    await conn.execute("ALTER TABLE messages ADD COLUMN media_url VARCHAR(500)")


async def make_chat(pool, root: Path) -> Chat:
    """A legacy folder with real files and messages pointing at them in every form:
    a path, a full URL with a host, no leading slash, percent-encoded, a file that is
    missing, a file nothing points at, a type the service refuses, and unrelated rows."""
    folder = root / "uploads-media"
    (folder / "2023").mkdir(parents=True)
    files = {
        "a.jpg": jpeg_bytes(40_000, seed=1),
        "b.png": png_bytes(64, 48),
        "2023/c.jpg": jpeg_bytes(10_000, seed=3),
        "foto 1.jpg": jpeg_bytes(7_000, seed=4),
        "orphan.jpg": jpeg_bytes(5_000, seed=5),
        "page.html": b"<html><body>a web page is not an accepted type</body></html>\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    urls = {
        "a": "/uploads/media/a.jpg",
        "b": "https://chat.example.com/uploads/media/b.png?v=2",
        "c": "uploads/media/2023/c.jpg",
        "foto": "/uploads/media/foto%201.jpg",
        "missing": "/uploads/media/gone.jpg",
        "page": "/uploads/media/page.html",
        "a_again": "http://old.example.com/uploads/media/a.jpg",
        "unrelated": "/somewhere/else.jpg",
        "none": None,
    }
    messages = {}
    async with pool.acquire() as conn:
        await chat_shape(conn)
        for label, url in urls.items():
            messages[label] = await conn.fetchval(
                "INSERT INTO messages (media_url) VALUES ($1) RETURNING id", url)
    return Chat(folder, files, messages)


def policy(**changes) -> Policy:
    """The server's processing as deployed (compression and metadata stripping on)."""
    return Policy.from_settings(replace_settings(Settings(), processing__concurrency=2, **changes))


async def run_import(store, chat: Chat, *, server_policy: Policy | None = None,
                     processing: bool = True, **kw) -> tuple[ImportReport, str]:
    """import_legacy as the command runs it: through media processing (the server's
    policy with ``process=True``, the bytes kept otherwise); ``processing=False``
    without any (type detection only)."""
    out = io.StringIO()
    opts = ImportOptions(source=chat.folder, **kw)
    proc = (Processing(import_policy(server_policy or policy(), opts.process))
            if processing else None)
    try:
        report = await import_legacy(store, opts, LIMITS, proc, out=out, bar=False)
    finally:
        if proc is not None:
            proc.close()
    return report, out.getvalue()
