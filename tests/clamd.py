"""A real clamd for the scanning tests: Debian's clamav-daemon, started once per
session as the test user, on a unix socket in a temporary folder, with a signature
database of its own made by ``sigtool`` from the EICAR test file (freshclam cannot
download here, and a deployment adds custom databases the same way).

Use the ``clamd`` fixture (import it into the test module); it skips, saying why,
only when clamd or sigtool is not installed (.ci/run installs them).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

# The EICAR anti-virus test file: harmless, and detected as a virus by design.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
START_SECONDS = 60.0


def _clamd_binary() -> str | None:
    return shutil.which("clamd") or ("/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists()
                                     else None)


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(path))
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


def _signatures(folder: Path) -> None:
    """test.hdb: EICAR's MD5 signature, as ``sigtool --md5`` writes it."""
    sample = folder / "eicar.com"
    sample.write_bytes(EICAR)
    line = subprocess.run(["sigtool", "--md5", str(sample)], check=True,
                          capture_output=True, timeout=60).stdout
    (folder / "db" / "test.hdb").write_bytes(line)
    sample.unlink()


@pytest.fixture(scope="session")
def clamd(tmp_path_factory) -> str:
    """The ``unix://`` address of a running clamd that knows EICAR."""
    binary = _clamd_binary()
    if binary is None or shutil.which("sigtool") is None:
        pytest.skip("clamd/sigtool not installed (apt-get install clamav-daemon clamav)")
    folder = tmp_path_factory.mktemp("clamd")
    (folder / "db").mkdir()
    _signatures(folder)
    sock = folder / "clamd.sock"
    conf = folder / "clamd.conf"
    conf.write_text(f"""Foreground yes
LocalSocket {sock}
DatabaseDirectory {folder / 'db'}
LogFile {folder / 'clamd.log'}
PidFile {folder / 'clamd.pid'}
StreamMaxLength 100M
MaxThreads 4
""")
    proc = subprocess.Popen([binary, "--config-file", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (folder / "clamd.log").read_text(errors="replace") \
                    if (folder / "clamd.log").exists() else ""
                raise RuntimeError(f"clamd did not start: {log[-2000:]}")
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
