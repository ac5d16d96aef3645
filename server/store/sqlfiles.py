"""Named SQL statements loaded from the ``sql/`` folder.

Each statement in a ``.sql`` file starts with a header line ``-- name: <name>`` and may
use ``:param`` placeholders, which a DBA can read; here they become asyncpg's ``$1..$n``.
Python then calls ``Q.get_media.fetchrow(conn, id=7)`` and never holds SQL text itself.

This is deliberately smaller than aiosql: the storage layer needs the statement text
and its parameter order (to prepare it, to run it through a cursor), not a wrapper
that fetches every row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.resources import SQL_DIR


_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
# ':name' but not the '::' of a cast, and not inside a quoted literal (see _bind).
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Statement:
    name: str
    sql: str                  # with $1..$n, as asyncpg wants it
    params: tuple[str, ...]   # the :names in $-order

    def args(self, kwargs: dict[str, Any]) -> list[Any]:
        missing = set(self.params) - kwargs.keys()
        extra = kwargs.keys() - set(self.params)
        if missing or extra:
            raise TypeError(f"{self.name}: missing {sorted(missing)}, unexpected {sorted(extra)}")
        return [kwargs[p] for p in self.params]

    async def fetch(self, conn, **kw):
        return await conn.fetch(self.sql, *self.args(kw))

    async def fetchrow(self, conn, **kw):
        return await conn.fetchrow(self.sql, *self.args(kw))

    async def fetchval(self, conn, **kw):
        return await conn.fetchval(self.sql, *self.args(kw))

    async def execute(self, conn, **kw) -> str:
        return await conn.execute(self.sql, *self.args(kw))


def _bind(name: str, body: str) -> Statement:
    order: list[str] = []
    out: list[str] = []
    # Split on single-quoted literals so a ':x' inside a string is left alone.
    for i, part in enumerate(re.split(r"('(?:[^']|'')*')", body)):
        if i % 2:
            out.append(part)
            continue

        def repl(m: re.Match) -> str:
            p = m.group(1)
            if p not in order:
                order.append(p)
            return f"${order.index(p) + 1}"

        out.append(_PARAM.sub(repl, part))
    return Statement(name, "".join(out).strip().rstrip(";"), tuple(order))


def parse_sql(text: str) -> dict[str, Statement]:
    """Parse one file's text into its named statements."""
    heads = list(_HEADER.finditer(text))
    found: dict[str, Statement] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = "\n".join(line for line in text[m.end():end].splitlines()
                         if not line.lstrip().startswith("--"))
        if m.group(1) in found:
            raise ValueError(f"statement {m.group(1)!r} defined twice")
        found[m.group(1)] = _bind(m.group(1), body)
    return found


class Queries:
    """All statements of ``sql/`` (recursively), reachable as attributes by name."""

    def __init__(self, root: Path = SQL_DIR):
        self._all: dict[str, Statement] = {}
        for path in sorted(root.rglob("*.sql")):
            for name, st in parse_sql(path.read_text(encoding="utf-8")).items():
                if name in self._all:
                    raise ValueError(f"statement {name!r} defined twice ({path})")
                self._all[name] = st

    def __getattr__(self, name: str) -> Statement:
        try:
            return self._all[name]
        except KeyError:
            raise AttributeError(f"no SQL statement named {name!r} in sql/") from None

    def names(self) -> list[str]:
        return sorted(self._all)


Q = Queries()
