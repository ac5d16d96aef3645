"""MEDIA_RETENTION rules and ages (server/retention/rules.py), as values."""
from datetime import timedelta

import pytest

from server.retention.rules import (RetentionRule, format_age, others, parse_age, parse_rules,
                                    selections)

D = timedelta(days=1)


@pytest.mark.parametrize("text,age", [
    ("365d", 365 * D), ("48h", timedelta(hours=48)), ("2w", 14 * D), (" 7D ", 7 * D),
    ("1h", timedelta(hours=1)), ("36600d", 36600 * D),
])
def test_ages(text, age):
    assert parse_age(text) == age


@pytest.mark.parametrize("text", [
    "", "d", "365", "1y", "3m", "1.5d", "-1d", "0d", "0h", "36601d", "1000000w", "1 d",
    "1dd", "١d",   # an Arabic-Indic digit is a digit to str.isdigit, not to us
])
def test_bad_ages(text):
    with pytest.raises(ValueError):
        parse_age(text)


@pytest.mark.parametrize("age", ["365d", "36h", "2w", "1h", "36600d"])
def test_ages_read_back(age):
    assert format_age(parse_age(age)) == age


@pytest.mark.parametrize("text,rules", [
    ("", ()),
    (" , ", ()),
    ("video:365d", (RetentionRule("video", 365 * D),)),
    ("*:1825d,video:365d,audio:730d",
     (RetentionRule("video", 365 * D), RetentionRule("audio", 730 * D),
      RetentionRule("*", 1825 * D))),
    ("IMAGE : 2w ,", (RetentionRule("image", 14 * D),)),
    ("document:24h", (RetentionRule("document", timedelta(hours=24)),)),
])
def test_rules(text, rules):
    assert parse_rules(text) == rules


@pytest.mark.parametrize("text,says", [
    ("video", "TYPE:AGE"),
    ("videos:365d", "not a media type"),
    ("video:365d,video:30d", "two rules"),
    ("*:1d,*:2d", "two rules"),
    ("video:1y", "not an age"),
    ("video:", "not an age"),
    (":365d", "not a media type"),
])
def test_bad_rules_say_why(text, says):
    with pytest.raises(ValueError, match=says):
        parse_rules(text)


def test_the_star_leaves_typed_rules_their_types():
    rules = parse_rules("video:365d,*:1825d,audio:730d")
    assert others(rules) == ["video", "audio"]
    assert [str(r) for r in rules] == ["video:365d", "audio:730d", "*:1825d"]


def test_each_rule_is_a_selection_and_the_star_spares_typed_ones():
    sels = selections(parse_rules("video:365d,*:30d"))
    assert [(s.media_type, s.except_types, s.older_than) for s in sels] == [
        ("video", (), 365 * D), (None, ("video",), 30 * D)]
    assert [s.label for s in sels] == ["rule video:365d", "rule *:30d"]
