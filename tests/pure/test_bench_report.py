"""The performance report's text (bench/report_format.py): how figures, ratios, tables,
medians and py-spy profiles are turned into the report. No timing is measured here."""
from __future__ import annotations

import pytest

from bench.report_format import (before_after_table, change_verdict, check,
                                 connections_needed, fmt_num, fmt_pct_range, fmt_range,
                                 fmt_ratio, fmt_ratio_range, like_cpu_table,
                                 like_label, like_table,
                                 like_targets, markdown_table, medians, ratio_cell,
                                 rotate, round_ratios, share_under,
                                 summarize_profile)


@pytest.mark.parametrize("value, text", [
    (None, "—"),
    (0, "0.00"),
    (2.345, "2.35"),
    (9.994, "9.99"),
    (10, "10.0"),
    (55.55, "55.5"),       # binary float: 55.549999...
    (99.94, "99.9"),
    (100, "100"),
    (3997.4, "3,997"),
    (1234567.8, "1,234,568"),
    (-250, "-250"),
])
def test_fmt_num(value, text):
    assert fmt_num(value) == text


@pytest.mark.parametrize("num, den, text", [
    (3997, 1567, "2.55×"),
    (1, 1, "1.00×"),
    (5, 0, "—"),
    (None, 3, "—"),
    (3, None, "—"),
    (0, 4, "0.00×"),
])
def test_fmt_ratio(num, den, text):
    assert fmt_ratio(num, den) == text


def test_markdown_table_aligns_numeric_columns_and_escapes_pipes():
    table = markdown_table(["what", "req/s"], [["a|b", "3,997"], ["c", 12]], [False, True])
    assert table.splitlines() == [
        "| what | req/s |",
        "|---|---:|",
        "| a\\|b | 3,997 |",
        "| c | 12 |",
    ]


@pytest.mark.parametrize("headers, rows, numeric", [
    (["a", "b"], [["only one"]], None),
    (["a", "b"], [["1", "2", "3"]], None),
    (["a", "b"], [], [True]),
])
def test_markdown_table_refuses_ragged_input(headers, rows, numeric):
    with pytest.raises(ValueError):
        markdown_table(headers, rows, numeric)


def test_medians_per_field_skip_missing_and_non_numbers():
    runs = [{"rps": 10, "p99_ms": 5.0, "name": "x", "ok": True},
            {"rps": 30, "p99_ms": 1.0},
            {"rps": 20}]
    assert medians(runs) == {"rps": 20, "p99_ms": 3.0}


@pytest.mark.parametrize("a, b, ratios", [
    ([4, 6, 9], [2, 3, 3], [2.0, 2.0, 3.0]),
    ([4, None, 9], [2, 3, 0], [2.0]),      # a round missing or with a zero base is skipped
    ([4, 6], [2], [2.0]),                  # only the rounds both sides have
    ([], [], []),
])
def test_round_ratios(a, b, ratios):
    assert round_ratios(a, b) == ratios


@pytest.mark.parametrize("ratios, text", [
    ([1.31, 1.92, 1.5], "1.31–1.92×"),
    ([2.5], "2.50×"),
    ([2.5, 2.5], "2.50×"),
    ([], "—"),
])
def test_fmt_ratio_range(ratios, text):
    assert fmt_ratio_range(ratios) == text


@pytest.mark.parametrize("values, text", [
    ([0.07, 0.25, 0.08], "7–25%"),
    ([-0.05], "-5%"),
    ([-0.06, 0.30], "-6–30%"),
    ([0.151, 0.149], "15%"),
    ([], "—"),
])
def test_fmt_pct_range(values, text):
    assert fmt_pct_range(values) == text


@pytest.mark.parametrize("items, round_no, order", [
    (["s", "n", "f"], 0, ["s", "n", "f"]),
    (["s", "n", "f"], 1, ["n", "f", "s"]),
    (["s", "n", "f"], 2, ["f", "s", "n"]),
    (["s", "n", "f"], 3, ["s", "n", "f"]),
    ([], 5, []),
])
def test_rotate(items, round_no, order):
    assert rotate(items, round_no) == order


@pytest.mark.parametrize("measured, op, goal, verdict", [
    (2.1, ">=", 2, "met"),
    (1.99, ">=", 2, "not met"),
    (63.9, "<=", 64, "met"),
    (64.1, "<=", 64, "not met"),
    (None, ">=", 1, "—"),
])
def test_check(measured, op, goal, verdict):
    assert check(measured, op, goal) == verdict


@pytest.mark.parametrize("measured, errors, verdict", [
    (2.1, 0, "met"),
    (2.1, 1, "not valid: 1 error"),
    (1.5, 4134, "not valid: 4,134 errors"),
    (None, 3, "not valid: 3 errors"),
])
def test_check_says_a_figure_with_failed_requests_is_not_valid(measured, errors, verdict):
    assert check(measured, ">=", 2, errors) == verdict


def _wrk(service: dict, reference: dict) -> dict:
    return {"sections": {"wrk": {"small-200-c32": {
        t: {"median": {k: v for k, v in run.items()}, "runs": [run]}
        for t, run in (("service", service), ("FileResponse", reference))}}},
        "config": {"ids": [200], "conns": [32]}}


def test_targets_table_refuses_rows_whose_runs_had_errors():
    from bench.report import targets_table
    clean = targets_table(_wrk({"rps": 3000, "p99_ms": 10, "errors": 0},
                               {"rps": 1000, "p99_ms": 20, "errors": 0}))
    assert clean.count("| met |") == 2
    # The same figures, but the service answered 301 requests with errors (503s when
    # PostgreSQL ran out of connections): neither row may say met.
    failed = targets_table(_wrk({"rps": 3000, "p99_ms": 10, "errors": 301},
                                {"rps": 1000, "p99_ms": 20, "errors": 0}))
    assert "| met |" not in failed
    assert failed.count("not valid: 301 errors") == 2


@pytest.mark.parametrize("servers, needed", [
    ([], 0),
    ([{}], 2 * 11),                                   # two workers, pool of 10 + LISTEN
    ([{}, {}], 44),
    ([{"DB_POOL_MAX": "20"}], 2 * 21),
    ([{"MEDIA_WORKERS": "1"}], 11),
    ([{"MEDIA_WORKERS": "4", "DB_POOL_MAX": "5"}], 24),
    ([{"CHECKOUT": "/tmp/base", "LOG_LEVEL": "WARNING"}], 22),   # other keys count not
    # the run that went on with 503s: service, service-nolog and three variants
    ([{}, {}, {"DB_POOL_MAX": "20"}, {"CHECKOUT": "/tmp/c", "DB_POOL_MAX": "20"},
      {"CHECKOUT": "/tmp/c"}], 150),
])
def test_connections_needed(servers, needed):
    assert connections_needed(servers, workers=2, pool_max=10) == needed


PROFILE = """\
<module> (/repo/run.py:5);main (/repo/server/cli/main.py:10);run_app (/repo/server/runtime/protocol.py:40);serve_media (/repo/server/api/serve.py:90);_write (/v/lib/python3.11/site-packages/aiohttp/http_writer.py:70) 6
<module> (/repo/run.py:5);main (/repo/server/cli/main.py:10);run_app (/repo/server/runtime/protocol.py:40);serve_media (/repo/server/api/serve.py:91);get (/repo/server/store/cache.py:12) 3
<module> (/repo/run.py:5);main (/repo/server/cli/main.py:10);run_app (/repo/server/runtime/protocol.py:40) 1
not a sample line
"""


def test_summarize_profile_self_and_inclusive_shares():
    s = summarize_profile(PROFILE)
    assert s["samples"] == 10
    assert s["self"] == [("_write (aiohttp/http_writer.py)", 60.0),
                         ("get (server/store/cache.py)", 30.0),
                         ("run_app (server/runtime/protocol.py)", 10.0)]
    # one entry per function whatever the line; the entry frames are left out
    assert s["inclusive"] == [("serve_media (server/api/serve.py)", 90.0),
                              ("get (server/store/cache.py)", 30.0)]


def test_summarize_profile_of_nothing():
    assert summarize_profile("") == {"samples": 0, "self": [], "inclusive": []}


LOGGED = """\
<module> (/repo/run.py:5);run_app (/repo/server/runtime/protocol.py:40);serve_media (/repo/server/api/serve.py:90) 14
<module> (/repo/run.py:5);run_app (/repo/server/runtime/protocol.py:40);RequestHandler.log_access (/v/lib/python3.11/site-packages/aiohttp/web_protocol.py:541);AccessLogger.log (/repo/server/observability/logformat.py:205) 4
<module> (/repo/run.py:5);run_app (/repo/server/runtime/protocol.py:40);AccessSink.flush (/repo/server/observability/logformat.py:180) 2
_bootstrap (/usr/lib/python3.11/threading.py:995);QueueListener._monitor (/usr/lib/python3.11/logging/handlers.py:1571) 30
<module> (/repo/run.py:5);serve_workers (/repo/server/runtime/processes.py:150) 50
"""


@pytest.mark.parametrize("collapsed, frames, share", [
    # 6 of the loop's 20 samples log; the writer thread and the supervisor don't count
    (LOGGED, ("RequestHandler.log_access (aiohttp/web_protocol.py)",
              "AccessSink.flush (server/observability/logformat.py)"), 30.0),
    (LOGGED, ("AccessSink.flush (server/observability/logformat.py)",), 10.0),
    # a sample under both frames counts once
    (LOGGED, ("RequestHandler.log_access (aiohttp/web_protocol.py)",
              "AccessLogger.log (server/observability/logformat.py)"), 20.0),
    (LOGGED, ("nothing (x.py)",), 0.0),
    ("", ("RequestHandler.log_access (aiohttp/web_protocol.py)",), None),
    # no loop at all (a profile of the supervisor alone): no share, not 0
    ("<module> (/repo/run.py:5);serve_workers (/repo/server/runtime/processes.py:150) 5\n",
     ("serve_workers (server/runtime/processes.py)",), None),
])
def test_share_under_counts_the_loops_samples_only(collapsed, frames, share):
    assert share_under(collapsed, frames) == share


# ---------------------------------------------------------------- before/after (issue 24)

@pytest.mark.parametrize("values, text", [
    ([], "—"),
    ([3.5], "3.50"),
    ([1180, 1020, 1100], "1,020–1,180"),
    ([12.0, 12.0], "12.0"),
])
def test_fmt_range(values, text):
    assert fmt_range(values) == text


@pytest.mark.parametrize("ratios, lower, verdict", [
    ([], False, "—"),
    ([0.85, 0.8, 0.7], False, "worse"),
    ([0.85, 0.95, 0.7], False, "same"),          # one round within 10%: noise
    ([1.2, 1.15], False, "better"),
    ([1.0, 1.02, 0.97], False, "same"),
    ([1.2, 1.3], True, "worse"),                 # latencies: higher after is worse
    ([0.5, 0.8], True, "better"),
])
def test_change_verdict_needs_every_round_beyond_the_margin(ratios, lower, verdict):
    assert change_verdict(ratios, lower) == verdict


def test_before_after_table_gives_medians_spreads_and_per_round_ratios():
    table = before_after_table([
        ("GETs, req/s", [1000, 1200, 1100], [500, 600, 550], False),
        ("p99, ms", [10, 12, 11], [11, 12, 10], True),
        ("forwarded, MiB/s", [], [40.0], False),
    ])
    lines = table.splitlines()
    assert lines[0].startswith("| row | before | before: rounds | after |")
    assert lines[2] == ("| GETs, req/s | 1,100 | 1,000–1,200 | 550 | 500–600 | 0.50× "
                        "| 0.50× | worse |")
    assert lines[3] == "| p99, ms | 11.0 | 10.0–12.0 | 11.0 | 10.0–12.0 | 1.00× | 0.91–1.10× | same |"
    assert lines[4] == "| forwarded, MiB/s | — | — | 40.0 | 40.0 | — | — | — |"


# ---------------------------------------------------------------- like with like (issue 29)

@pytest.mark.parametrize("scenario, label", [
    ("small-200", "50 KiB GETs, 200 ids"),
    ("small-2000", "50 KiB GETs, 2,000 ids"),
    ("304-200", "304s, 200 ids"),
    ("seek", "seeks, 1 KiB at the end of the large file"),
    ("other-1", "other-1"),
])
def test_like_label(scenario, label):
    assert like_label(scenario) == label


@pytest.mark.parametrize("num, den, per_round, text", [
    (3951, 1510, [2.41, 2.8, 2.6], "2.62× (2.41–2.80)"),
    (3951, 1510, [2.62], "2.62×"),          # one round: no range
    (3951, 1510, [], "2.62×"),
    (3951, 1510, [2.621, 2.622], "2.62×"),   # rounds agree to the digit: no range
    (None, 1510, [2.0, 3.0], "—"),
    (3951, 0, [2.0, 3.0], "—"),
])
def test_ratio_cell(num, den, per_round, text):
    assert ratio_cell(num, den, per_round) == text


def _entry(*rps: float, p99: float = 10.0, errors: int = 0) -> dict:
    runs = [{"rps": r, "p99_ms": p99, "errors": errors} for r in rps]
    return {"median": medians(runs), "runs": runs}


# The issue's own figures (one round each), plus a second round so ranges show.
LIKE = {"counts": [1, 2], "scenarios": {
    "small-200": {
        "service": {"1": _entry(3951, 4000, p99=20), "2": _entry(5602, 5700, p99=30)},
        "folder": {"1": _entry(1510, 1600, p99=25), "2": _entry(2991, 3000, p99=25)},
        "floor": {"1": _entry(10694, 10000), "2": _entry(14165, 14000)}},
    "304-200": {
        "service": {"1": _entry(5532, 5532), "2": _entry(7862, 7862)},
        "folder": {"1": _entry(1844, 1844), "2": _entry(3000, 3000)},
        "floor": {"1": _entry(15110, 15110), "2": _entry(23493, 23493)}},
}}


def test_like_table_rows_ratios_and_gains():
    lines = like_table(LIKE).splitlines()
    assert lines[0] == ("| requests | processes | service req/s | folder req/s | floor req/s "
                        "| service / folder | service / floor | p99 ms service / folder "
                        "| gain 1→2 service | gain 1→2 folder | gain 1→2 floor |")
    assert lines[1] == "|---|" + "|".join(["---:"] * 10) + "|"
    # medians of two rounds; the ratio's range over the rounds in brackets; no gains
    # on the one-process row
    assert lines[2] == ("| 50 KiB GETs, 200 ids | 1 | 3,976 | 1,555 | 10,347 "
                        "| 2.56× (2.50–2.62) | 0.38× (0.37–0.40) | 20.0 / 25.0 |  |  |  |")
    assert lines[3] == ("| 50 KiB GETs, 200 ids | 2 | 5,651 | 2,996 | 14,082 "
                        "| 1.89× (1.87–1.90) | 0.40× (0.40–0.41) | 30.0 / 25.0 "
                        "| 1.42× (1.42–1.43) | 1.93× (1.88–1.98) | 1.36× (1.32–1.40) |")
    # 304s: against the folder's 304s, and against its small 200s (the target)
    assert "| 3.00×; 3.56× (3.46–3.66) its 200s |" in lines[4]
    assert lines[4].startswith("| 304s, 200 ids | 1 | 5,532 | 1,844 | 15,110 ")
    assert len(lines) == 6


def test_like_table_with_one_count_has_no_gains():
    one = {"counts": [1], "scenarios": {"seek": {
        "service": {"1": _entry(900)}, "folder": {"1": _entry(300)},
        "floor": {"1": _entry(1800)}}}}
    lines = like_table(one).splitlines()
    assert lines[2] == ("| seeks, 1 KiB at the end of the large file | 1 | 900 | 300 | 1,800 "
                        "| 3.00× | 0.50× | 10.0 / 10.0 |  |  |  |")


def test_like_table_of_a_target_not_measured():
    part = {"counts": [1], "scenarios": {"seek": {"service": {"1": _entry(900)}}}}
    assert like_table(part).splitlines()[2] == (
        "| seeks, 1 KiB at the end of the large file | 1 | 900 | — | — | — | — "
        "| 10.0 / — |  |  |  |")


def test_like_targets_verdicts():
    rows = {r[0]: r[1:] for r in like_targets(LIKE)}
    assert rows["50 KiB GETs, 200 ids, 1 process: service / folder"] == [
        "2.56×", "2.50–2.62×", "≥ 2×", "met"]
    assert rows["50 KiB GETs, 200 ids, 2 processes: service / folder"][-1] == "not met"
    assert rows["50 KiB GETs, 200 ids, 1 process: p99 service / folder"] == [
        "20.0 / 25.0 ms", "", "no worse", "met"]
    assert rows["50 KiB GETs, 200 ids, 2 processes: p99 service / folder"][-1] == "not met"
    assert rows["50 KiB GETs, 200 ids, 1 process: service / floor"][-1] == "not met"
    assert rows["304s, 200 ids, 1 process: service / folder's 200s"][:1] == ["3.56×"]
    assert rows["304s, 200 ids, 1 process: service / folder's 200s"][-1] == "met"
    assert rows["304s, 200 ids, 2 processes: service / folder's 200s"][-1] == "not met"
    # 1.42x against the folder's 1.93x (medians of the two rounds)
    gain = rows["50 KiB GETs, 200 ids: gain 1→2, service / folder"]
    assert gain[0] == "0.74×" and gain[-1] == "not met"


def test_like_targets_refuse_figures_with_errors():
    bad = {"counts": [1], "scenarios": {"seek": {
        "service": {"1": _entry(900, errors=7)}, "folder": {"1": _entry(300)}}}}
    (row,) = like_targets(bad)
    assert row == ["seeks, 1 KiB at the end of the large file, 1 process: service / folder",
                   "3.00×", "3.00×", "≥ 2×", "not valid: 7 errors"]


def test_like_cpu_table_is_requests_per_cpu_second_of_each_target():
    def runs(*pairs):
        rs = [{"rps": r, "server_cpu": c} for r, c in pairs]
        return {"median": medians(rs), "runs": rs}
    like = {"counts": [1], "scenarios": {"small-200": {
        # a round where other work took the cores: fewer req/s, as many per CPU-second
        "service": {"1": runs((5000, 1.0), (2500, 0.5), (4900, 0.98))},
        "folder": {"1": runs((2000, 1.0), (1000, 0.5), (0, 0.9))},   # a round with no figure
        "floor": {"1": runs((20000, 1.0), (10000, 0.5))}}}}
    assert like_cpu_table(like).splitlines()[2] == (
        "| 50 KiB GETs, 200 ids | 1 | 5,000 | 2,000 | 20,000 | 2.50× | 0.25× |")
