"""A real Citus cluster on one machine for tests: a coordinator and workers, each its
own PostgreSQL 15 data directory on a free loopback port, with the Citus extension
built from ../shared/citus/ (``bash ../shared/citus/build.sh``; .ci/run runs it).

The servers are tests/pgcluster.py's nodes: run as the ``postgres`` system user when
the tests run as root, because PostgreSQL refuses to start as root (initdb and pg_ctl
exit with "cannot be run as root"); that module switches user in the child process
(subprocess's ``user=``, what ``runuser -u postgres --`` does) and owns the data
directories accordingly. As a non-root user, the servers run as that user.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg

from tests.pgcluster import Cluster, Node, machine_bindir
from tests.procs import free_port

DATABASE = "media"   # the one database of the cluster, with the extension on every node

# Citus in every node's shared memory; two-phase commit for writes that touch several
# workers in one transaction (max_prepared_transactions); logical decoding for moving
# shards while they are written (citus_move_shard_placement, the rebalancer). Nodes talk
# over loopback without TLS: with it, libpq in the server looks for a client certificate
# under $HOME/.postgresql, and the tests' HOME (root's, as root) is not the server's.
NODE_OPTIONS = ("-c shared_preload_libraries=citus -c max_prepared_transactions=100 "
                "-c wal_level=logical -c fsync=off -c citus.node_conninfo=sslmode=disable")


def unavailable() -> str | None:
    """Why a Citus cluster cannot run here (one line), or None when it can."""
    bindir = machine_bindir()
    if bindir is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        return f"no {pg_config} (postgresql-server-dev missing): Citus was not built"
    libdir = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True,
                            text=True).stdout.strip()
    if not (Path(libdir) / "citus.so").exists():
        return (f"Citus is not installed for PostgreSQL {bindir.parent.name} "
                "(bash ../shared/citus/build.sh, as root, builds it)")
    return None


def sql(dsn: str, statement: str, *params) -> list[tuple]:
    """Run one statement on its own autocommit connection; the rows it returned."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


class CitusCluster:
    """A coordinator and workers in one temporary folder; ``close`` stops and removes
    them all."""

    def __init__(self, bindir: Path):
        self._nodes = Cluster(bindir)
        self.coordinator: Node | None = None
        self.workers: list[Node] = []

    @property
    def dsn(self) -> str:
        """The coordinator's database: where the service and its commands connect."""
        return self.coordinator.dsn_for(DATABASE)

    def _node(self, name: str) -> Node:
        node = Node(self._nodes.bindir, self._nodes._dir(name), free_port(), NODE_OPTIONS)
        node.run("initdb", "-D", str(node.datadir), "-U", "postgres", "-A", "trust",
                 "--no-sync")
        node.start()
        self._nodes.nodes.append(node)
        sql(node.dsn, f'CREATE DATABASE "{DATABASE}"')
        sql(node.dsn_for(DATABASE), "CREATE EXTENSION citus")
        return node

    def start(self, workers: int = 2) -> None:
        self.coordinator = self._node("coordinator")
        sql(self.dsn, "SELECT citus_set_coordinator_host('127.0.0.1', %s)",
            self.coordinator.port)
        for _ in range(workers):
            self.add_worker()

    def add_worker(self) -> Node:
        """A new worker, added to the cluster (empty until shards are moved to it)."""
        node = self._node(f"worker{len(self.workers) + 1}")
        sql(self.dsn, "SELECT citus_add_node('127.0.0.1', %s)", node.port)
        self.workers.append(node)
        return node

    def stop_worker(self, node: Node) -> None:
        """Stop a worker outright (as a crash would); the coordinator still lists it."""
        node.stop("immediate")

    def start_worker(self, node: Node) -> None:
        node.start()

    def active_workers(self) -> list[tuple[str, int]]:
        return sorted((host, port) for host, port in
                      sql(self.dsn, "SELECT * FROM citus_get_active_worker_nodes()"))

    def close(self) -> None:
        self._nodes.close()


def start_cluster(workers: int = 2) -> CitusCluster:
    """A started cluster; the caller closes it (also when starting fails half-way)."""
    bindir = machine_bindir()
    cluster = CitusCluster(bindir)
    try:
        cluster.start(workers)
    except BaseException:
        cluster.close()
        raise
    return cluster
