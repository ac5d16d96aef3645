"""Where the SQL statements and the migrations are, installed or in a checkout.

They live in the repository's top-level ``sql/`` and ``migrations/`` folders (where
DBAs look). A wheel carries copies in ``server/_data/`` (see setup.py), so an installed
``media-store`` needs no checkout. The copy wins when present: beside an installed
package, a folder named ``sql`` could belong to anything.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_folder(name: str) -> Path:
    """The folder ``sql`` or ``migrations``; FileNotFoundError when neither place has it."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no {name}/ folder in {_PACKAGE / '_data'} or {_PACKAGE.parent}")


SQL_DIR = data_folder("sql")
MIGRATIONS_DIR = data_folder("migrations")
