"""``pip install .`` (a wheel, not editable), then the ``media-store`` console script from
a folder that is not the checkout: migrate, create-message, serve, an upload and its
bytes back. The statements and migrations must come from the installed package.

The wheel is built from a copy of the checkout (as from a clean clone, without .venv,
build/ or var/) with the running interpreter's setuptools, so nothing is downloaded.
It is installed with ``--no-deps`` into a fresh virtualenv that sees this test
environment's packages through a .pth file: the dependencies are the ones already
installed here, while ``server`` itself can only come from the wheel (the editable
install's import hook lives in a .pth file of the other environment, which a path
added this way does not run).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.dbutil import admin, dsn_for
from tests.media import png_bytes
from tests.procs import REPO, Processes, run_cli

pytestmark = pytest.mark.slow

COPY_IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "var", "*.egg-info",
                                     "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("build")
    src = work / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(work / "dist"), str(src)],
                   check=True, cwd=work, capture_output=True, timeout=300)
    (built,) = (work / "dist").glob("media_store-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    bindir = root / "bin"
    python = bindir / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True
                          ).stdout.strip()
    # This environment's packages as the dependencies (see the module docstring).
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return bindir


@pytest.fixture
async def empty_dsn(pg_server_dsn):
    """A database with nothing in it: the installed ``migrate`` has all the work to do."""
    name = f"media_pkg_{uuid.uuid4().hex[:12]}"
    # Test-harness DDL on a name we generate.
    await admin(pg_server_dsn, f'CREATE DATABASE "{name}"')
    yield dsn_for(pg_server_dsn, name)
    await admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*.sql"))}


def test_wheel_carries_every_statement_and_migration(wheel):
    with zipfile.ZipFile(wheel) as zf:
        for folder in ("sql", "migrations"):
            prefix = f"server/_data/{folder}/"
            packaged = {n[len(prefix):]: zf.read(n) for n in zf.namelist()
                        if n.startswith(prefix)}
            assert packaged == _files(REPO / folder), folder
        console = {n[len("server/console/"):]: zf.read(n) for n in zf.namelist()
                   if n.startswith("server/console/")}
        assert console == {p.name: p.read_bytes()
                           for p in (REPO / "server" / "console").iterdir()}
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        assert "media-store = server.cli.main:main" in zf.read(entry_points).decode()


def test_installed_package_imports_from_the_venv_not_the_checkout(venv, tmp_path):
    out = subprocess.run(
        [str(venv / "python"), "-c",
         "import server, server.resources as r; print(server.__file__); "
         "print(r.SQL_DIR); print(r.MIGRATIONS_DIR)"],
        cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        check=True, capture_output=True, text=True).stdout.split()
    venv_root = str(venv.parent)
    assert all(line.startswith(venv_root) for line in out), out
    assert out[1].endswith("server/_data/sql") and out[2].endswith("server/_data/migrations")


async def test_console_script_migrates_and_serves_from_any_folder(venv, empty_dsn, tmp_path):
    command = (str(venv / "media-store"),)
    env = {"DATABASE_URL": empty_dsn, "MEDIA_DATA_DIR": str(tmp_path / "var")}

    res = run_cli(["migrate"], env, command=command, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    # Every migration of the checkout, in the order yoyo applies them.
    from yoyo import read_migrations
    from yoyo.migrations import topological_sort
    ids = [m.id for m in topological_sort(read_migrations(str(REPO / "migrations")))]
    assert res.stdout.strip() == "applied: " + ", ".join(ids)
    res = run_cli(["create-message"], env, command=command, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    message_id = int(res.stdout.strip())
    res = run_cli(["keys", "create", "backend"], env, command=command, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip()

    procs = Processes()
    try:
        srv = procs.start(env, ("serve", "--no-migrate"), command=command, cwd=tmp_path)
        data = png_bytes(64, 64)
        req = urllib.request.Request(
            f"{srv.url}/api/media/upload-production?message_id={message_id}&filename=a.png",
            data=data, method="POST", headers={"Content-Type": "image/png",
                                               "Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 201
            url = json.loads(r.read())["url"]
        assert srv.get(url) == (200, data)   # the signed URL, no key
        status, page = srv.get("/console")   # the console's files, from the package
        assert status == 200 and b'src="/console/app.js"' in page
        assert srv.signal_and_wait(signal.SIGTERM) == 0
    finally:
        procs.cleanup()
    # Nothing was written next to where it ran but the folder it was told to use.
    assert sorted(p.name for p in tmp_path.iterdir()) == []
