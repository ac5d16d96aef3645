"""Private PostgreSQL servers for tests that restart, freeze or replicate a database:
the machine's own PostgreSQL binaries, run as the ``postgres`` system user when the
tests run as root (PostgreSQL refuses to run as root), listening on 127.0.0.1 only."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.procs import free_port


def machine_bindir() -> Path | None:
    """The newest PostgreSQL server binaries installed on this machine, if any."""
    root = Path("/usr/lib/postgresql")
    found = sorted((d for d in root.glob("*/bin") if (d / "pg_ctl").exists()),
                   key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _as_postgres() -> dict:
    return {"user": "postgres"} if os.geteuid() == 0 else {}


@dataclass
class Node:
    bindir: Path
    datadir: Path
    port: int
    options: str = ""      # extra server settings, e.g. "-c log_statement=all"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def run(self, tool: str, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run([str(self.bindir / tool), *args], capture_output=True,
                              text=True, timeout=timeout, cwd="/tmp", **_as_postgres())
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-w", "-t", "60", "-l",
                 str(self.datadir / "server.log"), "-o",
                 f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} "
                 f"{self.options}",
                 "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.datadir), "-w", "-m", mode, "stop")

    def log(self) -> str:
        return (self.datadir / "server.log").read_text(errors="replace")

    def running(self) -> bool:
        return subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                               "status"], capture_output=True, cwd="/tmp",
                              **_as_postgres()).returncode == 0


class Cluster:
    """A primary and its standbys in one temporary folder; ``close`` stops them all."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="media-cluster-", dir="/tmp"))
        os.chmod(self.root, 0o777)
        self.nodes: list[Node] = []

    def _dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(d, "postgres", "postgres")
        return d

    def primary(self) -> Node:
        node = Node(self.bindir, self._dir("primary"), free_port())
        node.run("initdb", "-D", str(node.datadir), "-U", "postgres", "-A", "trust",
                 "--no-sync")
        node.start()
        self.nodes.append(node)
        return node

    def standby_of(self, primary: Node, options: str = "") -> Node:
        """A streaming replica made with pg_basebackup (-R writes its standby config)."""
        node = Node(self.bindir, self._dir(f"standby{len(self.nodes)}"), free_port(),
                    options)
        node.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U",
                 "postgres", "-D", str(node.datadir), "-R", "-X", "stream", "--no-sync")
        node.start()
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in reversed(self.nodes):
            try:
                if node.running():
                    node.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
