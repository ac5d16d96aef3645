"""The messages column that holds legacy URLs, turned into SQL safely.

PostgreSQL takes values as bind parameters, never identifiers, so a column chosen at
run time (--url-column) has to be part of the statement's text. It is accepted only
after the catalogue confirms messages has such a column, and it is quoted by PostgreSQL
itself (quote_ident); sql/legacy.sql holds the statements with a ``{url_column}``
placeholder that only this module fills in.
"""
from __future__ import annotations

import dataclasses
import re

from server.store.sqlfiles import Q, Statement

PLACEHOLDER = "{url_column}"
# PostgreSQL's longest identifier (NAMEDATALEN - 1); NUL can never be part of one.
_NAME = re.compile(r"[^\x00]{1,63}")
TEXT_TYPES = ("text", "character varying")


class ColumnError(ValueError):
    """--url-column does not name a usable text column of messages."""


@dataclasses.dataclass(frozen=True)
class UrlColumn:
    name: str
    quoted: str   # as quote_ident returned it

    def bind(self, statement: Statement) -> Statement:
        """The statement with the column's quoted name in place of the placeholder."""
        return render(statement, self.quoted)


def render(statement: Statement, quoted: str) -> Statement:
    """Fill ``{url_column}`` with an already quoted identifier."""
    if PLACEHOLDER not in statement.sql:
        raise ValueError(f"{statement.name} has no {PLACEHOLDER}")
    return dataclasses.replace(statement, sql=statement.sql.replace(PLACEHOLDER, quoted))


async def url_column(conn, name: str) -> UrlColumn:
    """Check ``name`` against the catalogue; raise ColumnError unless it is a text
    column of messages."""
    if not _NAME.fullmatch(name):
        raise ColumnError(f"--url-column {name!r} is not a column name")
    row = await Q.legacy_url_column.fetchrow(conn, column_name=name)
    if row is None:
        raise ColumnError(f"messages has no column {name!r}")
    if not row["type"].startswith(TEXT_TYPES):
        raise ColumnError(f"messages.{name} is {row['type']}, not text")
    return UrlColumn(name, row["quoted"])
