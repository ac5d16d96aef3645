"""Which legacy file a URL may name (pure), and resolving it on a real folder."""
import os

import pytest

from server.legacy.paths import legacy_name, relative_name, resolve, url_path


@pytest.mark.parametrize("raw,name", [
    ("a.jpg", "a.jpg"),
    ("foto%201.jpg", "foto 1.jpg"),
    ("relat%C3%B3rio.pdf", "relatório.pdf"),
    ("2023/05/b.mp4", "2023/05/b.mp4"),
    ("100%25.jpg", "100%.jpg"),                 # an escaped percent is a percent
    ("%252F.jpg", "%2F.jpg"),                   # decoded once only: not a slash
    ("..a.jpg", "..a.jpg"),                     # dots inside a name are fine
    # traversal
    ("../etc/passwd", None), ("a/../../x", None), ("..", None), (".", None),
    ("a/./b", None), ("%2e%2e/x", None), ("%2E%2E", None), ("a/%2e%2e/b", None),
    # encoded separators
    ("a%2Fb.jpg", None), ("a%2fb.jpg", None), ("..%2Fetc%2Fpasswd", None),
    ("a%5Cb.jpg", None), ("a\\b.jpg", None), ("..\\..\\x", None),
    # absolute paths and empty segments
    ("/etc/passwd", None), ("//etc/passwd", None), ("a//b", None), ("a/", None), ("", None),
    # NUL and control characters
    ("a%00.jpg", None), ("a\x00.jpg", None), ("a%0A.jpg", None), ("a\x7f.jpg", None),
    # not UTF-8
    ("%ff%fe.jpg", None),
    # too long
    ("a" * 1025, None), ("/".join(["a"] * 33), None),
])
def test_legacy_name(raw, name):
    assert legacy_name(raw) == name


@pytest.mark.parametrize("name", ["a.jpg", "foto 1.jpg", "x/y z/%41.jpg", "relatório.pdf",
                                  "a?b#c.jpg"])
def test_url_path_round_trips(name):
    assert legacy_name(url_path(name)) == name


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "media"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a")
    (root / "sub" / "b.jpg").write_bytes(b"b")
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    os.symlink(outside, root / "out.jpg")              # a symlink out of the folder
    os.symlink(root / "a.jpg", root / "in.jpg")        # one that stays inside
    os.symlink(tmp_path, root / "up")                  # a folder symlink out
    os.symlink("../secret.txt", root / "sub" / "rel.jpg")  # ../ through a relative link
    return root


@pytest.mark.parametrize("name,expected", [
    ("a.jpg", "a.jpg"),
    ("sub/b.jpg", "sub/b.jpg"),
    ("in.jpg", "a.jpg"),
    ("out.jpg", None),
    ("up/secret.txt", None),
    ("sub/rel.jpg", None),
    ("sub", None),                 # a folder is not a file
    ("nope.jpg", None),
    ("../secret.txt", None),
    ("/etc/passwd", None),
    ("a.jpg\x00", None),
])
def test_resolve(folder, name, expected):
    got = resolve(folder, name)
    if expected is None:
        assert got is None
    else:
        assert got == (folder / expected).resolve()


def test_relative_name(tmp_path):
    assert relative_name(tmp_path, tmp_path / "a" / "b.jpg") == "a/b.jpg"
    assert relative_name(tmp_path, tmp_path / "bad\nname.jpg") is None
    bad = os.fsdecode(b"\xff.jpg")        # undecodable bytes, as os.walk returns them
    assert relative_name(tmp_path, tmp_path / bad) is None
