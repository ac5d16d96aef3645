"""Reading legacy files: listing the folder, hashing and streaming a file in pieces."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiofiles

from server.legacy.paths import relative_name, resolve

PIECE = 256 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclasses.dataclass(frozen=True)
class Listing:
    names: list[str]                    # usable legacy names, sorted
    refused: list[tuple[str, str]]      # (path as found, why it cannot be imported)


def _walk(root: Path) -> Listing:
    names: list[str] = []
    refused: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            path = Path(folder, f)
            shown = os.fsdecode(path.relative_to(root)).encode("utf-8", "replace").decode()
            name = relative_name(root, path)
            if name is None:
                refused.append((shown, "the name cannot be a URL path (encoding, control "
                                       "characters or length)"))
            elif resolve(root, name) is None:
                refused.append((shown, "not a regular file inside the folder "
                                       "(a symlink out of it?)"))
            else:
                names.append(name)
    names.sort()
    return Listing(names, refused)


async def list_folder(root: Path) -> Listing:
    """Every file under ``root`` that can be a legacy name, and those that cannot."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    return await asyncio.to_thread(_walk, root)


@dataclasses.dataclass(frozen=True)
class FileStat:
    size: int
    mtime: datetime

    @classmethod
    def of(cls, path: Path) -> "FileStat":
        st = path.stat()
        # Microseconds: what a TIMESTAMPTZ keeps, so a round trip compares equal.
        mtime = EPOCH + timedelta(microseconds=st.st_mtime_ns // 1000)
        return cls(st.st_size, mtime)


async def sha256_of(path: Path) -> tuple[bytes, int]:
    """The file's sha256 and size, read in pieces."""
    h = hashlib.sha256()
    size = 0
    async with aiofiles.open(path, "rb") as f:
        while piece := await f.read(PIECE):
            h.update(piece)
            size += len(piece)
    return h.digest(), size
