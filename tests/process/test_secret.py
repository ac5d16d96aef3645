"""Secrets never printed: masked in repr, str and formatting, in log records (message,
arguments and tracebacks) and in the command line's error lines; pure functions with
tables, then the settings object, the log formatter, and run.py as a process."""
from __future__ import annotations

import io
import logging
import pickle

import pytest

from server.cli.main import _database_error
from server.secret import RedactingFormatter, Secret, mask_url, redact, secret_url
from server.settings import load_settings, replace_settings, Settings
from tests.procs import run_cli

MASK_URL = [
    # (url, shown)
    ("postgresql://u:pw@db:5432/chat", "postgresql://u:***@db:5432/chat"),
    ("postgres://admin:p%40ss@db/chat", "postgres://admin:***@db/chat"),
    ("postgresql://u@db/chat", "postgresql://u@db/chat"),
    ("postgresql://db/chat", "postgresql://db/chat"),
    ("postgresql://postgres:@/postgres?host=/tmp/pg",
     "postgresql://postgres:@/postgres?host=/tmp/pg"),
    ("postgresql://u@db/chat?password=hush&sslmode=require",
     "postgresql://u@db/chat?password=***&sslmode=require"),
    ("postgresql://u:a@db/x?sslmode=off&PASSWORD=b",
     "postgresql://u:***@db/x?sslmode=off&PASSWORD=***"),
    ("connect to postgresql://u:pw@db/chat failed", "connect to postgresql://u:***@db/chat failed"),
    ("https://host/a:b@c", "https://host/a:b@c"),   # no user info: a path, left alone
]


@pytest.mark.parametrize("url,shown", MASK_URL, ids=[u for u, _ in MASK_URL])
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_a_secret_is_masked_however_it_is_printed():
    s = Secret("sk-live-0123456789")
    for text in (str(s), repr(s), f"{s}", f"{s!r}", "%s" % s, "{}".format(s), f"{s:>20}",
                 repr([s]), repr({"key": s})):
        assert "0123456789" not in text, text
    assert s.reveal() == "sk-live-0123456789"
    assert s == Secret("sk-live-0123456789")
    assert s != Secret("other") and s != "sk-live-0123456789"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_a_secret_url_shows_all_but_its_password():
    s = secret_url("postgresql://media:Tr0ub4dor@db.internal:6432/chat")
    assert str(s) == "postgresql://media:***@db.internal:6432/chat"
    assert s.reveal() == "postgresql://media:Tr0ub4dor@db.internal:6432/chat"


def test_settings_repr_masks_the_database_password():
    settings = load_settings({"DATABASE_URL": "postgresql://media:Tr0ub4dor@db:5432/chat"})
    assert "Tr0ub4dor" not in repr(settings)
    assert "postgresql://media:***@db:5432/chat" in repr(settings)
    replicas = load_settings({"DATABASE_READ_URL": "postgresql://r:Rep1ica-pw@r1/chat, "
                                                    "postgresql://r:Rep2ica-pw@r2/chat"})
    assert "Rep1ica-pw" not in repr(replicas) and "Rep2ica-pw" not in repr(replicas)
    assert "postgresql://r:***@r2/chat" in repr(replicas)
    # A str given to Settings directly (tests, tools) is wrapped too.
    assert "Tr0ub4dor" not in repr(replace_settings(
        Settings(), db__url="postgresql://u:Tr0ub4dor@db/c",
        db__read_urls=("postgresql://u:Tr0ub4dor@r/c",)))


def test_redact_masks_remembered_secrets_in_any_text():
    secret_url("postgresql://media:Corr3ct-h0rse@db/chat")
    Secret("zapi-token-abcdef")
    text = ("auth failed for password Corr3ct-h0rse; url postgresql://x:y@z/w; "
            "token zapi-token-abcdef; decoded Corr3ct-h0rse")
    out = redact(text)
    assert "Corr3ct-h0rse" not in out and "zapi-token-abcdef" not in out
    assert "postgresql://x:***@z/w" in out


def test_percent_encoded_password_is_redacted_in_both_forms():
    secret_url("postgresql://media:p%40ss%2Fw0rd@db/chat")
    assert redact("p@ss/w0rd and p%40ss%2Fw0rd") == "*** and ***"


def test_short_values_are_masked_only_in_urls():
    secret_url("postgresql://u:ab@db/chat")
    assert redact("table ab; postgresql://u:ab@db/chat") == "table ab; postgresql://u:***@db/chat"


def test_log_records_are_redacted_with_their_arguments_and_tracebacks():
    dsn = "postgresql://media:L0g-s3cret@db/chat"
    secret_url(dsn)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(logging.Formatter("%(levelname)s %(message)s")))
    log = logging.getLogger("tests.secret")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connecting to %s", dsn)
        try:
            raise ConnectionError(f"could not reach {dsn} (password L0g-s3cret)")
        except ConnectionError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    out = stream.getvalue()
    assert "L0g-s3cret" not in out
    assert "connecting to postgresql://media:***@db/chat" in out
    assert "Traceback" in out   # the traceback itself is kept, only masked


def test_database_error_lines_are_redacted(capsys):
    secret_url("postgresql://media:Err0r-s3cret@db/chat")
    assert _database_error(OSError("cannot use postgresql://media:Err0r-s3cret@db/chat")) == 1
    err = capsys.readouterr().err
    assert "Err0r-s3cret" not in err
    assert "database error: OSError: cannot use postgresql://media:***@db/chat" in err


@pytest.mark.parametrize("args", [("migrate",), ()], ids=["migrate", "serve"])
def test_run_py_never_prints_the_database_password(tmp_path, args):
    # Nothing listens on port 1: the command fails, with DEBUG logging on.
    env = {"DATABASE_URL": "postgresql://media:Pr0cess-s3cret@127.0.0.1:1/x",
           "LOG_LEVEL": "DEBUG", "MEDIA_DATA_DIR": str(tmp_path / "var")}
    res = run_cli(list(args), env, timeout=60)
    assert res.returncode == 1, res.stderr
    assert "database error:" in res.stderr
    assert "Pr0cess-s3cret" not in res.stderr + res.stdout


def test_json_log_lines_are_redacted_too():
    from server.observability.logformat import JsonFormatter
    secret_url('postgresql://media:J"s0n-s3cret@db/chat')
    record = logging.LogRecord("x", logging.ERROR, __file__, 1,
                               'auth failed: password J"s0n-s3cret', (), None)
    line = RedactingFormatter(JsonFormatter()).format(record)
    assert "s0n-s3cret" not in line
    assert '"message": "auth failed: password ***"' in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_process_log_configuration_redacts(capsys, fmt):
    from server.observability import logformat
    secret_url("postgresql://media:C0nfig-s3cret@db/chat")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logformat.configure("INFO", fmt)
        logging.getLogger("tests.secret.process").warning(
            "cannot reach postgresql://media:C0nfig-s3cret@db/chat")
        logformat._listener.stop()    # drains the writer thread's queue ...
        logformat._listener.start()   # ... and leaves it as configure() expects it
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "cannot reach postgresql://media:***@db/chat" in err
    assert "C0nfig-s3cret" not in err
