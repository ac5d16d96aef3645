from datetime import datetime, timedelta, timezone

import pytest

from server.http.conditional import (
    MAX_ETAGS,
    Outcome,
    evaluate_preconditions,
    http_date,
    if_range_allows,
    parse_etag_list,
    parse_http_date,
)

ETAG = '"abc"'
LM = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
LM_STR = "Tue, 02 Jan 2024 03:04:05 GMT"
EARLIER = "Tue, 02 Jan 2024 03:04:04 GMT"  # one second before LM
LATER = "Tue, 02 Jan 2024 03:04:06 GMT"  # one second after LM
LM_RFC850 = "Tuesday, 02-Jan-24 03:04:05 GMT"
LM_ASCTIME = "Tue Jan  2 03:04:05 2024"

PROCEED, NOT_MODIFIED, FAILED = Outcome.PROCEED, Outcome.NOT_MODIFIED, Outcome.PRECONDITION_FAILED


def _evaluate(method="GET", im=None, inm=None, ims=None, ius=None, last_modified=LM):
    return evaluate_preconditions(
        method,
        ETAG,
        last_modified,
        if_match=im,
        if_none_match=inm,
        if_modified_since=ims,
        if_unmodified_since=ius,
    )


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        pytest.param("GET", {}, PROCEED, id="no-preconditions"),
        # Step 1: If-Match, strong comparison (RFC 9110 §13.1.1).
        pytest.param("GET", {"im": ETAG}, PROCEED, id="im-match"),
        pytest.param("GET", {"im": "*"}, PROCEED, id="im-star"),
        pytest.param("GET", {"im": '"x", "abc"'}, PROCEED, id="im-list-match"),
        pytest.param("GET", {"im": '"x"'}, FAILED, id="im-mismatch"),
        pytest.param("GET", {"im": 'W/"abc"'}, FAILED, id="im-weak-never-matches"),
        pytest.param("GET", {"im": "abc"}, FAILED, id="im-unquoted-garbage"),
        pytest.param("GET", {"im": ""}, FAILED, id="im-empty-list"),
        pytest.param("PUT", {"im": '"x"'}, FAILED, id="im-mismatch-put"),
        # Step 2: If-Unmodified-Since, only without If-Match (§13.1.4).
        pytest.param("GET", {"ius": LM_STR}, PROCEED, id="ius-equal"),
        pytest.param("GET", {"ius": LATER}, PROCEED, id="ius-later"),
        pytest.param("GET", {"ius": EARLIER}, FAILED, id="ius-earlier"),
        pytest.param("GET", {"ius": "yesterday"}, PROCEED, id="ius-invalid-ignored"),
        pytest.param("GET", {"ius": f"{EARLIER}, {LATER}"}, PROCEED, id="ius-list-ignored"),
        pytest.param("GET", {"im": ETAG, "ius": EARLIER}, PROCEED, id="im-disables-ius"),
        pytest.param("GET", {"im": '"x"', "ius": LATER}, FAILED, id="im-fail-despite-ius"),
        # Step 3: If-None-Match, weak comparison (§13.1.2).
        pytest.param("GET", {"inm": ETAG}, NOT_MODIFIED, id="inm-match-get"),
        pytest.param("HEAD", {"inm": ETAG}, NOT_MODIFIED, id="inm-match-head"),
        pytest.param("POST", {"inm": ETAG}, FAILED, id="inm-match-post"),
        pytest.param("PUT", {"inm": "*"}, FAILED, id="inm-star-put"),
        pytest.param("GET", {"inm": "*"}, NOT_MODIFIED, id="inm-star-get"),
        pytest.param("GET", {"inm": 'W/"abc"'}, NOT_MODIFIED, id="inm-weak-matches"),
        pytest.param("GET", {"inm": '"x", W/"abc"'}, NOT_MODIFIED, id="inm-list-match"),
        pytest.param("GET", {"inm": '"x"'}, PROCEED, id="inm-mismatch"),
        pytest.param("GET", {"inm": "abc, ,,"}, PROCEED, id="inm-garbage"),
        pytest.param("get", {"inm": ETAG}, FAILED, id="method-case-sensitive"),
        # Precedence (§13.2.2).
        pytest.param("GET", {"im": '"x"', "inm": ETAG}, FAILED, id="im-fail-beats-inm"),
        pytest.param("GET", {"ius": EARLIER, "inm": ETAG}, FAILED, id="ius-fail-beats-inm"),
        pytest.param("GET", {"im": ETAG, "inm": ETAG}, NOT_MODIFIED, id="im-pass-then-inm"),
        pytest.param("GET", {"inm": '"x"', "ims": LM_STR}, PROCEED, id="inm-disables-ims"),
        pytest.param("GET", {"inm": ETAG, "ims": EARLIER}, NOT_MODIFIED, id="inm-beats-ims"),
        # Step 4: If-Modified-Since, GET/HEAD only (§13.1.3).
        pytest.param("GET", {"ims": LM_STR}, NOT_MODIFIED, id="ims-equal"),
        pytest.param("GET", {"ims": LATER}, NOT_MODIFIED, id="ims-later"),
        pytest.param("GET", {"ims": EARLIER}, PROCEED, id="ims-earlier"),
        pytest.param("HEAD", {"ims": LM_STR}, NOT_MODIFIED, id="ims-head"),
        pytest.param("POST", {"ims": LM_STR}, PROCEED, id="ims-on-post-ignored"),
        pytest.param("GET", {"ims": "not a date"}, PROCEED, id="ims-invalid-ignored"),
        pytest.param("GET", {"ims": f"{LM_STR}, {LM_STR}"}, PROCEED, id="ims-list-ignored"),
        pytest.param("GET", {"ims": LM_RFC850}, NOT_MODIFIED, id="ims-rfc850"),
        pytest.param("GET", {"ims": LM_ASCTIME}, NOT_MODIFIED, id="ims-asctime"),
        pytest.param("GET", {"im": ETAG, "ims": LM_STR}, NOT_MODIFIED, id="im-pass-then-ims"),
    ],
)
def test_evaluate_preconditions(method, headers, expected):
    assert _evaluate(method, **headers) is expected


def test_sub_second_last_modified_is_truncated():
    # The contract says whole seconds; a stray microsecond must not defeat a 304.
    assert _evaluate(ims=LM_STR, last_modified=LM.replace(microsecond=999_999)) is NOT_MODIFIED


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        pytest.param(MAX_ETAGS, NOT_MODIFIED, id="last-examined-tag-matches"),
        pytest.param(MAX_ETAGS + 1, PROCEED, id="tag-past-limit-ignored"),
    ],
)
def test_if_none_match_work_is_bounded(position, expected):
    tags = [f'"t{i}"' for i in range(position - 1)] + [ETAG]
    assert _evaluate(inm=", ".join(tags)) is expected


@pytest.mark.parametrize(
    "header",
    [
        pytest.param('"' * 100_000, id="quotes"),
        pytest.param("W/" * 50_000, id="weak-prefixes"),
        pytest.param(",".join(['"a'] * 20_000), id="unterminated-tags"),
        pytest.param("\x00\udcff\u202e" * 10_000, id="controls-and-surrogates"),
    ],
)
def test_huge_garbage_if_match_fails_without_crashing(header):
    assert _evaluate(im=header) is FAILED
    assert _evaluate(inm=header) is PROCEED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('"a"', [(False, '"a"')], id="strong"),
        pytest.param('W/"a"', [(True, '"a"')], id="weak"),
        pytest.param('""', [(False, '""')], id="empty-opaque-tag"),
        pytest.param("*", "*", id="star"),
        pytest.param(" * ", "*", id="star-with-ows"),
        pytest.param('"a", W/"b"', [(False, '"a"'), (True, '"b"')], id="list"),
        pytest.param('"a,b"', [(False, '"a,b"')], id="comma-inside-quotes"),
        pytest.param('"a",, \t,"b"', [(False, '"a"'), (False, '"b"')], id="empty-elements"),
        pytest.param('"\u00e4"', [(False, '"\u00e4"')], id="obs-text"),
        pytest.param("", [], id="empty"),
        pytest.param("a", [], id="unquoted"),
        pytest.param('w/"a"', [], id="lower-case-weak-prefix"),
        pytest.param('"a', [], id="unterminated"),
        pytest.param('"a"b', [], id="trailing-junk"),
        pytest.param('"a" "b"', [], id="missing-comma"),
        pytest.param('"a b"', [], id="space-inside"),
        pytest.param('"a\x00"', [], id="control-inside"),
        pytest.param('*, "a"', [(False, '"a"')], id="star-in-list-skipped"),
        pytest.param('junk, "a", W/x, "b"', [(False, '"a"'), (False, '"b"')], id="skip-garbage"),
    ],
)
def test_parse_etag_list(value, expected):
    assert parse_etag_list(value) == expected


def test_parse_etag_list_stops_after_max_entries():
    value = ", ".join(f'"{i}"' for i in range(MAX_ETAGS * 2))
    assert len(parse_etag_list(value)) == MAX_ETAGS


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        pytest.param(LM, LM_STR, id="utc"),
        pytest.param(LM.replace(microsecond=123), LM_STR, id="microseconds-dropped"),
        pytest.param(
            LM.astimezone(timezone(timedelta(hours=-5))), LM_STR, id="other-zone-converted"
        ),
        pytest.param(
            datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc),
            "Sun, 06 Nov 1994 08:49:37 GMT",
            id="rfc-example",
        ),
        pytest.param(datetime(2024, 1, 2, 3, 4, 5), LM_STR, id="naive-taken-as-utc"),
    ],
)
def test_http_date(dt, expected):
    assert http_date(dt) == expected


NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
RFC_EXAMPLE = datetime(1994, 11, 6, 8, 49, 37, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", RFC_EXAMPLE, id="imf-fixdate"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", RFC_EXAMPLE, id="rfc850"),
        pytest.param("Sun Nov  6 08:49:37 1994", RFC_EXAMPLE, id="asctime-padded-day"),
        pytest.param("Wed Nov 16 08:49:37 1994", RFC_EXAMPLE + timedelta(days=10), id="asctime"),
        pytest.param(" \tSun, 06 Nov 1994 08:49:37 GMT ", RFC_EXAMPLE, id="surrounding-ows"),
        pytest.param(
            "Tue, 02 Jan 2024 23:59:60 GMT", LM.replace(hour=23, minute=59, second=59), id="leap"
        ),
        pytest.param(
            "Monday, 06-Nov-75 08:49:37 GMT",
            RFC_EXAMPLE.replace(year=2075),
            id="rfc850-50-years-ahead",
        ),
        pytest.param(
            "Monday, 06-Nov-76 08:49:37 GMT",
            RFC_EXAMPLE.replace(year=1976),
            id="rfc850-51-years-ahead-is-past",
        ),
        pytest.param("Sun, 06 Nov 1994 08:49:37 gmt", None, id="lower-case-gmt"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 UTC", None, id="utc-zone-name"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 +0000", None, id="numeric-zone"),
        pytest.param("Sun, 6 Nov 1994 08:49:37 GMT", None, id="one-digit-day"),
        pytest.param("sun, 06 nov 1994 08:49:37 GMT", None, id="lower-case-names"),
        pytest.param("Sun, 30 Feb 1994 08:49:37 GMT", None, id="no-such-day"),
        pytest.param("Sun, 06 Nov 1994 24:00:00 GMT", None, id="hour-24"),
        pytest.param("Sun, 06 Nov 1994 08:49:61 GMT", None, id="second-61"),
        pytest.param("Sun, 06 Nov 0000 08:49:37 GMT", None, id="year-zero"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", None,
                     id="list-of-dates"),
        pytest.param("", None, id="empty"),
        pytest.param("1994-11-06T08:49:37Z", None, id="iso-8601"),
        pytest.param("784111777", None, id="epoch-seconds"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT" + " " * 100 + "x", None, id="long"),
    ],
)
def test_parse_http_date(value, expected):
    assert parse_http_date(value, now=NOW) == expected


def test_http_date_round_trips():
    assert parse_http_date(http_date(LM)) == LM


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        pytest.param(None, True, id="absent"),
        pytest.param(ETAG, True, id="strong-etag-match"),
        pytest.param(f" {ETAG} ", True, id="etag-with-ows"),
        pytest.param('W/"abc"', False, id="weak-etag-never-matches"),
        pytest.param('"other"', False, id="other-etag"),
        pytest.param(f'{ETAG}, "x"', False, id="etag-list-not-allowed"),
        pytest.param('"abc', False, id="unterminated-etag"),
        pytest.param("abc", False, id="unquoted-etag"),
        pytest.param(LM_STR, True, id="date-exact"),
        pytest.param(LM_RFC850, True, id="date-exact-rfc850"),
        pytest.param(EARLIER, False, id="date-one-second-early"),
        pytest.param(LATER, False, id="date-one-second-late"),
        pytest.param("garbage", False, id="garbage"),
        pytest.param("", False, id="empty"),
    ],
)
def test_if_range_allows(if_range, expected):
    assert if_range_allows(if_range, ETAG, LM) is expected


def test_if_range_date_compares_whole_seconds():
    assert if_range_allows(LM_STR, ETAG, LM.replace(microsecond=500_000)) is True
