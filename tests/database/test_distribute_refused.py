"""`media-store distribute` on a database without Citus: refused in one line, with
nothing changed (its full run is in tests/citus/, on a real cluster)."""
from __future__ import annotations

import pytest

from server.cli.distribute import NotCitus, distribute
from tests.dbutil import fetchval


async def test_refused_without_the_extension(db_dsn):
    printed = []
    with pytest.raises(NotCitus, match="CREATE EXTENSION citus"):
        await distribute(db_dsn, out=printed.append)
    assert printed == []
    assert await fetchval(db_dsn, "SELECT count(*) FROM pg_trigger "
                          "WHERE tgname = 'media_files_notify_deleted'") == 1
