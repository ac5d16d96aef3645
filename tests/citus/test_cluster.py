"""The test cluster itself: the coordinator sees both workers active, and a
distributed table spreads its shards over them."""
from __future__ import annotations

from tests.citus_cluster import sql


def test_both_workers_are_active(citus):
    assert citus.active_workers() == sorted(("127.0.0.1", w.port) for w in citus.workers)
    assert len(citus.workers) == 2


def test_a_distributed_table_has_shards_on_both_workers(citus):
    sql(citus.dsn, "CREATE TABLE cluster_probe (id int PRIMARY KEY)")
    try:
        sql(citus.dsn, "SELECT create_distributed_table('cluster_probe', 'id')")
        sql(citus.dsn, "INSERT INTO cluster_probe SELECT generate_series(1, 100)")
        ports = {p for (p,) in sql(citus.dsn, "SELECT DISTINCT nodeport FROM citus_shards "
                                             "WHERE table_name = 'cluster_probe'::regclass")}
        assert ports == {w.port for w in citus.workers}
        assert sql(citus.dsn, "SELECT count(*) FROM cluster_probe") == [(100,)]
    finally:
        sql(citus.dsn, "DROP TABLE cluster_probe")
