"""Manifests: CSV records of what was imported or exported, one line per file.

The first four columns are the issue's record of a backup (legacy name, size, sha256,
media id); later columns add context without moving those.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

HEADER = ("legacy_name", "size", "sha256", "media_id", "message_id", "outcome")
# import-legacy's: size and sha256 are the legacy file's; then what was stored, which
# differs only when it was imported with --process.
IMPORT_HEADER = HEADER + ("stored_sha256", "stored_size", "processed")
# export's: sha256 is what was written; for a legacy import, its file's own sha256
# (different when it was processed) and whether it was.
EXPORT_HEADER = HEADER + ("legacy_sha256", "processed")

Line = Sequence[object]


def write_manifest(path: Path, lines: Iterable[Line],
                   header: Sequence[str] = HEADER) -> int:
    """Write the manifest atomically (a reader never sees half of it); returns lines."""
    tmp = path.with_name(f".{path.name}.tmp")
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for line in lines:
            row = ["" if v is None else v for v in line]
            w.writerow(row + [""] * (len(header) - len(row)))   # every line as wide
            n += 1
    os.replace(tmp, path)
    return n


def read_manifest(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
