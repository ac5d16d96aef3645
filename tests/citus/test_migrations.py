"""A migration written after `distribute` applies on the coordinator: Citus carries
its DDL to every shard of the distributed table, and its rollback too."""
from __future__ import annotations

from server.cli.migrate import apply_migrations, rollback_migrations
from tests.citus_cluster import sql

MIGRATION = """-- A column and an index on the distributed media_files (test migration).
-- depends:
ALTER TABLE media_files ADD COLUMN citus_probe TEXT;
CREATE INDEX media_files_citus_probe_idx ON media_files (citus_probe);
UPDATE media_files SET citus_probe = 'seen';
"""
ROLLBACK = """DROP INDEX media_files_citus_probe_idx;
ALTER TABLE media_files DROP COLUMN citus_probe;
"""

# Each worker's shards of media_files that have the column (test harness).
SHARDS_WITH_COLUMN = """
SELECT coalesce(sum(result::int), 0) FROM run_command_on_shards('media_files',
    $$SELECT count(*) FROM information_schema.columns
       WHERE table_name = '%s' AND column_name = 'citus_probe'$$)
"""


def test_a_later_migration_reaches_every_shard(distributed, tmp_path):
    (tmp_path / "9001_after_distribute.sql").write_text(MIGRATION)
    (tmp_path / "9001_after_distribute.rollback.sql").write_text(ROLLBACK)
    shards = sql(distributed.dsn, "SELECT count(*) FROM citus_shards "
                 "WHERE table_name = 'media_files'::regclass")[0][0]
    assert apply_migrations(distributed.dsn, folder=tmp_path) == ["9001_after_distribute"]
    try:
        assert sql(distributed.dsn, SHARDS_WITH_COLUMN) == [(shards,)]
        assert sql(distributed.dsn, "SELECT count(*) FROM media_files "
                   "WHERE citus_probe IS DISTINCT FROM 'seen'") == [(0,)]
    finally:
        assert rollback_migrations(distributed.dsn, folder=tmp_path) == ["9001_after_distribute"]
    assert sql(distributed.dsn, SHARDS_WITH_COLUMN) == [(0,)]
