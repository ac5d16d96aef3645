"""Matching messages' old URLs to legacy files: pure functions, tables."""
import pytest

from server.legacy.matching import name_from_url, normalise_prefix, plan, refs_by_name

P = "/uploads/media/"


@pytest.mark.parametrize("prefix,norm", [
    ("/uploads/media/", P), ("uploads/media", P), ("/uploads/media", P), (" /x/ ", "/x/"),
])
def test_normalise_prefix(prefix, norm):
    assert normalise_prefix(prefix) == norm


@pytest.mark.parametrize("prefix", ["", "/", "  "])
def test_prefix_must_name_a_folder(prefix):
    with pytest.raises(ValueError):
        normalise_prefix(prefix)


@pytest.mark.parametrize("url,name", [
    ("/uploads/media/a.jpg", "a.jpg"),
    ("uploads/media/a.jpg", "a.jpg"),
    ("  /uploads/media/a.jpg\n", "a.jpg"),
    ("/uploads/media/a.jpg?v=2#x", "a.jpg"),
    ("https://chat.example.com/uploads/media/a.jpg", "a.jpg"),
    ("http://chat.example.com:8080/uploads/media/sub/a.jpg?x=1", "sub/a.jpg"),
    ("//cdn.example.com/uploads/media/a.jpg", "a.jpg"),
    ("/uploads/media/foto%201.jpg", "foto 1.jpg"),
    ("/uploads/media/foto 1.jpg", "foto 1.jpg"),           # stored unencoded
    ("/uploads/media/relatório.pdf", "relatório.pdf"),
    ("/uploads/media/", None),
    ("/uploads/media/../secret", None),
    ("/uploads/media/a%2Fb.jpg", None),
    ("/uploads/mediaX/a.jpg", None),
    ("/other/uploads/media/a.jpg", None),
    ("https://chat.example.com/other/a.jpg", None),
    ("http://[bad/uploads/media/a.jpg", None),            # malformed URL: no match, no crash
    ("", None),
])
def test_name_from_url(url, name):
    assert name_from_url(url, P) == name


def test_plan_owners_orphans_missing():
    refs = [(5, "/uploads/media/a.jpg"), (3, "https://h/uploads/media/a.jpg"),
            (7, "/uploads/media/gone.jpg"), (8, "/elsewhere/b.jpg"),
            (9, "/uploads/media/b.jpg")]
    by_name = refs_by_name(refs, P)
    assert by_name == {"a.jpg": [(5, "/uploads/media/a.jpg"), (3, "https://h/uploads/media/a.jpg")],
                       "gone.jpg": [(7, "/uploads/media/gone.jpg")],
                       "b.jpg": [(9, "/uploads/media/b.jpg")]}
    p = plan(["a.jpg", "b.jpg", "o1.jpg", "o2.jpg"], by_name)
    assert p.owners == {"a.jpg": 3, "b.jpg": 9}        # the oldest message owns a shared file
    assert p.orphans == ["o1.jpg", "o2.jpg"]
    assert p.missing == [(7, "gone.jpg")]
    assert set(p.referrers) == {"a.jpg", "b.jpg"}


def test_plan_orphans_to():
    p = plan(["a.jpg", "o.jpg"], refs_by_name([(1, "/uploads/media/a.jpg")], P), orphans_to=42)
    assert p.owners == {"a.jpg": 1, "o.jpg": 42}
    assert p.orphans == ["o.jpg"]      # still reported as orphans
