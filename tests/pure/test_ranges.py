import sys

import pytest

from server.http.ranges import (
    MAX_HEADER_CHARS,
    MAX_RANGES,
    UNSATISFIABLE,
    ByteRange,
    Unsatisfiable,
    coalesce,
    parse_range,
)

LENGTH = 1000
BIG = "9" * 20  # more than the 18 digits parse_range converts
R = ByteRange


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        # No header, or one we must ignore (RFC 9110 §14.2): whole 200.
        pytest.param(None, LENGTH, None, id="absent"),
        pytest.param("", LENGTH, None, id="empty-value"),
        pytest.param("items=0-1", LENGTH, None, id="unknown-unit"),
        pytest.param("bytes", LENGTH, None, id="no-equals"),
        pytest.param("bytes=", LENGTH, None, id="no-specs"),
        pytest.param("bytes=,", LENGTH, None, id="only-empty-elements"),
        pytest.param("bytes= 0-1", LENGTH, None, id="space-after-equals-invalid"),
        pytest.param("bytes =0-1", LENGTH, None, id="space-before-equals-invalid"),
        pytest.param("bytes=0 -1", LENGTH, None, id="space-inside-spec-invalid"),
        pytest.param("bytes=5-2", LENGTH, None, id="last-before-first-invalid"),
        pytest.param("bytes=0-1,5-2", LENGTH, None, id="one-invalid-spec-voids-all"),
        pytest.param("bytes=-", LENGTH, None, id="lone-dash"),
        pytest.param("bytes=1", LENGTH, None, id="no-dash"),
        pytest.param("bytes=0-1-2", LENGTH, None, id="two-dashes"),
        pytest.param("bytes=a-b", LENGTH, None, id="letters"),
        pytest.param("bytes=0x10-20", LENGTH, None, id="hex"),
        pytest.param("bytes=+1-2", LENGTH, None, id="plus-sign"),
        pytest.param("bytes=-+1", LENGTH, None, id="plus-sign-suffix"),
        pytest.param("bytes=1_0-20", LENGTH, None, id="underscore-digit-separator"),
        pytest.param("bytes=\u00b2-3", LENGTH, None, id="superscript-digit"),
        pytest.param("bytes=\u0661-\u0662", LENGTH, None, id="arabic-indic-digits"),
        pytest.param("bytes=0-1;q=1", LENGTH, None, id="trailing-parameter"),
        # Single ranges (§14.1.2).
        pytest.param("bytes=0-1", LENGTH, [R(0, 1)], id="first-two-bytes-ios-probe"),
        pytest.param("BYTES=0-1", LENGTH, [R(0, 1)], id="unit-upper-case"),
        pytest.param("Bytes=0-1", LENGTH, [R(0, 1)], id="unit-mixed-case"),
        pytest.param(" bytes=0-1\t", LENGTH, [R(0, 1)], id="field-value-ows-stripped"),
        pytest.param("bytes=0-", LENGTH, [R(0, 999)], id="open-ended-from-zero"),
        pytest.param("bytes=500-", LENGTH, [R(500, 999)], id="open-ended-seek"),
        pytest.param("bytes=0-0", LENGTH, [R(0, 0)], id="first-byte"),
        pytest.param("bytes=999-999", LENGTH, [R(999, 999)], id="last-byte"),
        pytest.param("bytes=998-5000", LENGTH, [R(998, 999)], id="end-clamped"),
        pytest.param("bytes=-1", LENGTH, [R(999, 999)], id="suffix-one"),
        pytest.param("bytes=-500", LENGTH, [R(500, 999)], id="suffix"),
        pytest.param("bytes=-1000", LENGTH, [R(0, 999)], id="suffix-equal-length-whole"),
        pytest.param("bytes=-5000", LENGTH, [R(0, 999)], id="suffix-longer-whole"),
        pytest.param("bytes=007-010", LENGTH, [R(7, 10)], id="leading-zeros"),
        # Unsatisfiable (§14.1.2, §15.5.17: 416).
        pytest.param("bytes=1000-", LENGTH, UNSATISFIABLE, id="start-at-length"),
        pytest.param("bytes=1000-2000", LENGTH, UNSATISFIABLE, id="start-past-end"),
        pytest.param("bytes=-0", LENGTH, UNSATISFIABLE, id="suffix-zero"),
        pytest.param("bytes=-000", LENGTH, UNSATISFIABLE, id="suffix-zeros"),
        pytest.param("bytes=2000-3000,-0", LENGTH, UNSATISFIABLE, id="all-specs-unsat"),
        pytest.param("bytes=0-", 0, UNSATISFIABLE, id="empty-file-open"),
        pytest.param("bytes=0-0", 0, UNSATISFIABLE, id="empty-file-first-byte"),
        pytest.param("bytes=-1", 0, UNSATISFIABLE, id="empty-file-suffix"),
        # Several ranges: list syntax (§5.6.1.2), request order, unsat specs dropped.
        pytest.param("bytes=0-1,2-3", LENGTH, [R(0, 1), R(2, 3)], id="two-ranges"),
        pytest.param("bytes=0-1, 2-3", LENGTH, [R(0, 1), R(2, 3)], id="space-after-comma"),
        pytest.param("bytes=0-1 ,\t2-3", LENGTH, [R(0, 1), R(2, 3)], id="ows-both-sides"),
        pytest.param("bytes=0-1,,2-3", LENGTH, [R(0, 1), R(2, 3)], id="empty-element"),
        pytest.param("bytes=,0-1,", LENGTH, [R(0, 1)], id="leading-trailing-empty"),
        pytest.param("bytes=4-5,0-1", LENGTH, [R(4, 5), R(0, 1)], id="request-order-kept"),
        pytest.param("bytes=0-1,2000-", LENGTH, [R(0, 1)], id="unsat-spec-dropped"),
        pytest.param("bytes=-0,-2", LENGTH, [R(998, 999)], id="suffix-zero-dropped"),
        # Numbers too long to convert (bounded to 18 digits).
        pytest.param(f"bytes={BIG}-", LENGTH, UNSATISFIABLE, id="huge-start"),
        pytest.param(f"bytes=0-{BIG}", LENGTH, [R(0, 999)], id="huge-end-clamped"),
        pytest.param(f"bytes=-{BIG}", LENGTH, [R(0, 999)], id="huge-suffix-whole"),
        pytest.param(f"bytes={BIG}-5", LENGTH, None, id="huge-start-small-end"),
        pytest.param(f"bytes={BIG}-{BIG}", LENGTH, UNSATISFIABLE, id="huge-both-equal"),
        pytest.param(f"bytes={BIG}1-{BIG}", LENGTH, None, id="huge-end-below-start"),
        pytest.param("bytes=" + "0" * 30 + "1-2", LENGTH, [R(1, 2)], id="long-zero-padding"),
        pytest.param("bytes=999999999999999999-", LENGTH, UNSATISFIABLE, id="18-digit-start"),
    ],
)
def test_parse_range(header, length, expected):
    assert parse_range(header, length) == expected


@pytest.mark.parametrize(
    ("count", "expected_count"),
    [
        pytest.param(MAX_RANGES, MAX_RANGES, id="max-ranges-accepted"),
        pytest.param(MAX_RANGES + 1, None, id="one-too-many-ignored"),
    ],
)
def test_parse_range_spec_count_limit(count, expected_count):
    header = "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(count))
    result = parse_range(header, 100_000)
    assert (None if result is None else len(result)) == expected_count


@pytest.mark.parametrize(
    ("total_chars", "ignored"),
    [
        pytest.param(MAX_HEADER_CHARS, False, id="at-limit-parsed"),
        pytest.param(MAX_HEADER_CHARS + 1, True, id="over-limit-ignored"),
    ],
)
def test_parse_range_header_length_limit(total_chars, ignored):
    header = "bytes=0-1" + " " * (total_chars - len("bytes=0-1"))
    assert len(header) == total_chars
    assert (parse_range(header, LENGTH) is None) is ignored


def test_parse_range_never_converts_unbounded_numbers():
    # With the interpreter's limit at its minimum, int() on a 1000-digit string
    # raises ValueError; parse_range must not get there.
    digits = "7" * 1000
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert parse_range(f"bytes={digits}-", LENGTH) is UNSATISFIABLE
        assert parse_range(f"bytes=0-{digits}", LENGTH) == [R(0, 999)]
        assert parse_range(f"bytes=-{digits}", LENGTH) == [R(0, 999)]
    finally:
        sys.set_int_max_str_digits(old)


def test_unsatisfiable_is_a_singleton():
    assert Unsatisfiable() is UNSATISFIABLE
    assert repr(UNSATISFIABLE) == "UNSATISFIABLE"


@pytest.mark.parametrize(
    ("byte_range", "length"),
    [
        pytest.param(R(0, 0), 1, id="one-byte"),
        pytest.param(R(0, 1), 2, id="ios-probe"),
        pytest.param(R(500, 999), 500, id="tail"),
    ],
)
def test_byte_range_length(byte_range, length):
    assert byte_range.length == length


@pytest.mark.parametrize(
    ("ranges", "kwargs", "expected"),
    [
        pytest.param([], {}, [], id="empty"),
        pytest.param([R(0, 9)], {}, [R(0, 9)], id="single"),
        pytest.param(
            [R(500, 599), R(0, 99)], {}, [R(500, 599), R(0, 99)], id="far-apart-order-kept"
        ),
        pytest.param([R(0, 10), R(5, 20)], {}, [R(0, 20)], id="overlap-merged"),
        pytest.param([R(0, 99), R(10, 20)], {}, [R(0, 99)], id="contained-merged"),
        pytest.param([R(0, 9), R(10, 19)], {}, [R(0, 19)], id="adjacent-merged"),
        pytest.param([R(0, 9), R(90, 99)], {}, [R(0, 99)], id="gap-80-merged"),
        pytest.param([R(0, 9), R(91, 99)], {}, [R(0, 9), R(91, 99)], id="gap-81-kept"),
        pytest.param([R(50, 60), R(0, 10)], {}, [R(0, 60)], id="out-of-order-near-sorted"),
        pytest.param(
            [R(900, 999), R(0, 9), R(5, 20)],
            {},
            [R(0, 20), R(900, 999)],
            id="partial-merge-sorts-all",
        ),
        pytest.param([R(0, 9), R(10, 19)], {"gap": 0}, [R(0, 19)], id="gap-0-adjacent"),
        pytest.param(
            [R(0, 9), R(11, 19)], {"gap": 0}, [R(0, 9), R(11, 19)], id="gap-0-one-byte-apart"
        ),
    ],
)
def test_coalesce(ranges, kwargs, expected):
    assert coalesce(ranges, **kwargs) == expected


def test_coalesce_bounds_abusive_overlap():
    # 32 copies of the whole file (the Apache-killer shape, RFC 9110 §17.15).
    ranges = parse_range("bytes=" + ",".join(["0-"] * MAX_RANGES), LENGTH)
    assert len(ranges) == MAX_RANGES
    merged = coalesce(ranges)
    assert merged == [R(0, LENGTH - 1)]
    assert sum(r.length for r in merged) <= LENGTH


def test_coalesce_does_not_mutate_input():
    ranges = [R(50, 60), R(0, 10)]
    coalesce(ranges)
    assert ranges == [R(50, 60), R(0, 10)]
