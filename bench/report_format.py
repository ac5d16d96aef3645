"""The pure half of bench/report.py: numbers to text, medians to table rows, py-spy
samples to a profile summary, figures to the issue's targets. No I/O, no timing, so
tests/pure/test_bench_report.py can pin the formatting down.
"""
from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence


def fmt_num(x: float | None) -> str:
    """A figure as a table shows it: thousands grouped from 1,000, one decimal below
    100, two below 10; None (not measured) as a dash."""
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    """num/den as '2.55×'; a dash when either side is missing or the base is zero."""
    if num is None or den is None or den == 0:
        return "—"
    return f"{num / den:.2f}×"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                   numeric: Sequence[bool] | None = None) -> str:
    """A GitHub markdown table; numeric columns are right-aligned. Cells are str()'d,
    and a '|' inside a cell is escaped so it cannot split the row."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    if len(numeric) != len(headers):
        raise ValueError("numeric must have one flag per header")

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in rows:
        row = list(row)
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(headers)}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def medians(runs: Sequence[dict]) -> dict:
    """The median of every numeric field across rounds (fields missing in a round are
    taken over the rounds that have them)."""
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float))
            and not isinstance(v, bool)}
    return {k: statistics.median(r[k] for r in runs if k in r) for k in sorted(keys)}


def round_ratios(a: Sequence[float | None], b: Sequence[float | None]) -> list[float]:
    """a[i]/b[i] for each round both sides measured (rounds pair the runs that were
    taken minutes apart, so their ratio carries less of the machine's drift)."""
    return [x / y for x, y in zip(a, b) if x is not None and y]


def fmt_ratio_range(ratios: Sequence[float]) -> str:
    """'1.31–1.92×' over the rounds; one round: its ratio; none: a dash."""
    if not ratios:
        return "—"
    lo, hi = min(ratios), max(ratios)
    return f"{lo:.2f}×" if len(ratios) == 1 or lo == hi else f"{lo:.2f}–{hi:.2f}×"


def fmt_pct_range(values: Sequence[float]) -> str:
    """Fractions as '7–25%' over the rounds ('−5%' for one round or equal ends)."""
    if not values:
        return "—"
    lo, hi = (round(100 * v) for v in (min(values), max(values)))
    return f"{lo}%" if lo == hi else f"{lo}–{hi}%"


def rotate(items: Sequence, round_no: int) -> list:
    """The targets in a different order each round, so none always runs first (on a
    warm cache) or last (after the others heated the machine)."""
    if not items:
        return []
    k = round_no % len(items)
    return list(items[k:]) + list(items[:k])


def _frame_name(frame: str) -> str:
    """'func (path/to/site-packages/pkg/mod.py:123)' -> 'func (pkg/mod.py)'."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0] if where else ""
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    else:
        for marker in ("/server/", "/bench/"):
            if marker in path:
                path = marker.strip("/") + "/" + path.split(marker, 1)[1]
                break
    return f"{func} ({path})" if path else func


# Frames every sample of the service passes through (start-up and the loop's entry):
# listing them as "inclusive" time says nothing.
ENTRY_FRAMES = ("(server/cli/", "(server/runtime/processes.py)",
                "run_app (server/runtime/protocol.py)")


def summarize_profile(collapsed: str, top: int = 12) -> dict:
    """Summarize py-spy's raw (collapsed) output: 'a;b;c COUNT' per line, root first.

    Returns the sample count, the leaf functions taking most samples ("self"), and the
    service's own functions (server/..., less the entry frames) by the share of samples
    under them ("inclusive"), each as (name, percent) pairs, highest first."""
    self_ = Counter()
    incl = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_[frames[-1]] += n
        for name in set(frames):
            if "(server/" in name and not any(e in name for e in ENTRY_FRAMES):
                incl[name] += n
    pct = (lambda c: [(name, 100.0 * k / total) for name, k in c.most_common(top)]) \
        if total else (lambda c: [])
    return {"samples": total, "self": pct(self_), "inclusive": pct(incl)}


# The event loop's frame in a worker: the samples of the thread that serves requests
# (the log's writer thread and the supervisor have none).
LOOP_FRAME = "run_app (server/runtime/protocol.py)"
# What the access log costs the loop: aiohttp's call into our logger per request, and
# the sink's flush of the lines it buffered (server/observability/logformat.py).
ACCESS_LOG_FRAMES = ("RequestHandler.log_access (aiohttp/web_protocol.py)",
                     "AccessSink.flush (server/observability/logformat.py)")


def share_under(collapsed: str, frames: Iterable[str], among: str = LOOP_FRAME
                ) -> float | None:
    """Percent of the samples passing through ``among`` that also pass through any of
    ``frames`` (names as summarize_profile gives them); None without such samples.

    The access log's cost read this way is the CPU it takes from the loop, measured
    in one process: two server processes compared by their throughput differ by more
    than that from run to run on a shared machine (docs/performance.md)."""
    want = set(frames)
    base = hit = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        names = {_frame_name(f) for f in stack.split(";") if f}
        if among in names:
            base += int(count)
            if names & want:
                hit += int(count)
    return 100.0 * hit / base if base else None


def check(measured: float | None, op: str, goal: float, errors: int = 0) -> str:
    """'met' / 'not met' for measured OP goal ('>=' or '<='); '—' if not measured.
    ``errors``: failed requests in the runs behind the figure, which then says nothing
    (a server answering 503 fast is not a fast server)."""
    if errors:
        return f"not valid: {errors:,} error{'' if errors == 1 else 's'}"
    if measured is None:
        return "—"
    ok = measured >= goal if op == ">=" else measured <= goal
    return "met" if ok else "not met"


def connections_needed(servers: Iterable[dict[str, str]], workers: int, pool_max: int) -> int:
    """The PostgreSQL connections that service processes started with these settings
    (each a variant's KEY=VALUE, {} for the defaults) may hold at once: per worker
    process, its pool (DB_POOL_MAX) and the connection its deletion feed LISTENs on."""
    total = 0
    for env in servers:
        w = int(env.get("MEDIA_WORKERS", workers))
        p = int(env.get("DB_POOL_MAX", pool_max))
        total += w * (p + 1)
    return total


def fmt_range(values: Sequence[float]) -> str:
    """The rounds' spread of one side's figures, '1,020–1,180'; one value: itself."""
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    return fmt_num(lo) if lo == hi else f"{fmt_num(lo)}–{fmt_num(hi)}"


def change_verdict(ratios: Sequence[float], lower_is_better: bool = False,
                   margin: float = 0.10) -> str:
    """Whether the per-round after/before ratios show a change beyond the noise: 'worse'
    or 'better' only when every round's ratio lies beyond ``margin`` (10%) on the same
    side of 1, so a single noisy round cannot make the verdict; otherwise 'same'."""
    if not ratios:
        return "—"
    # For latencies a smaller figure is the better one: invert so > 1 reads as better.
    gains = [1 / r if lower_is_better else r for r in ratios if r]
    if gains and all(g < 1 - margin for g in gains):
        return "worse"
    if gains and all(g > 1 + margin for g in gains):
        return "better"
    return "same"


def before_after_table(rows: Sequence[tuple[str, Sequence[float], Sequence[float], bool]]
                       ) -> str:
    """A markdown table of (row, before's figures by round, after's by round, lower is
    better): the medians, each side's spread, after/before of the medians and per round
    (rounds pair runs taken side by side), and the verdict. A side not measured in a
    row has no figures and shows dashes."""
    out = []
    for name, before, after, lower in rows:
        b = statistics.median(before) if before else None
        a = statistics.median(after) if after else None
        per_round = round_ratios(after, before)
        out.append([name, fmt_num(b), fmt_range(before), fmt_num(a), fmt_range(after),
                    fmt_ratio(a, b), fmt_ratio_range(per_round),
                    change_verdict(per_round, lower)])
    return markdown_table(["row", "before", "before: rounds", "after", "after: rounds",
                           "after/before", "per round", "change"], out,
                          [False, True, True, True, True, True, True, False])


# ---------------------------------------------------------------- like with like (issue 29)
# sections.like = {"counts": [1, N], "scenarios": {scenario: {kind: {str(count):
#                  {"median": {...}, "runs": [{...}, ...]}}}}}, kind in LIKE_KINDS.
LIKE_KINDS = ("service", "folder", "floor")


def like_label(scenario: str) -> str:
    """'small-2000' -> '50 KiB GETs, 2,000 ids'; '304-200' -> '304s, 200 ids';
    'seek' -> 'seeks, 1 KiB at the end of the large file'."""
    kind, _, n = scenario.partition("-")
    if kind == "small":
        return f"50 KiB GETs, {int(n):,} ids"
    if kind == "304":
        return f"304s, {int(n):,} ids"
    if kind == "seek":
        return "seeks, 1 KiB at the end of the large file"
    return scenario


def _like(like: dict, scenario: str, kind: str, count: int) -> dict:
    return like.get("scenarios", {}).get(scenario, {}).get(kind, {}).get(str(count), {})


def _rps(entry: dict) -> tuple[float | None, list[float | None]]:
    return (entry.get("median", {}).get("rps"),
            [r.get("rps") for r in entry.get("runs", [])])


def ratio_cell(num: float | None, den: float | None, per_round: Sequence[float]) -> str:
    """'2.62× (2.41–2.80)': the medians' ratio and its range over the rounds (left out
    with one round, or when the rounds agree to the last digit); a dash when not
    measured."""
    text = fmt_ratio(num, den)
    if text == "—" or not per_round:
        return text
    lo, hi = f"{min(per_round):.2f}", f"{max(per_round):.2f}"
    return text if lo == hi else f"{text} ({lo}–{hi})"


def like_ratio(like: dict, a: tuple[str, str, int], b: tuple[str, str, int]
               ) -> tuple[float | None, list[float]]:
    """Target a's median req/s over b's (each (scenario, kind, count)), and the same
    ratio round by round."""
    (am, ar), (bm, br) = _rps(_like(like, *a)), _rps(_like(like, *b))
    return (am / bm if am and bm else None), round_ratios(ar, br)


def _cell(like: dict, a: tuple[str, str, int], b: tuple[str, str, int]) -> str:
    (am, ar), (bm, br) = _rps(_like(like, *a)), _rps(_like(like, *b))
    return ratio_cell(am, bm, round_ratios(ar, br))


def like_table(like: dict) -> str:
    """The like-with-like table: per scenario and process count, service, folder
    (FileResponse) and floor (bare aiohttp from memory) req/s, the ratios, the p99s,
    and on the default count's row each one's gain over one process."""
    counts = like.get("counts", [])
    one, top = (counts[0], counts[-1]) if counts else (1, 1)
    rows = []
    for scenario in like.get("scenarios", {}):
        for count in counts:
            s, f, fl = (_like(like, scenario, k, count) for k in LIKE_KINDS)
            vs_folder = _cell(like, (scenario, "service", count), (scenario, "folder", count))
            if scenario.startswith("304-"):
                small = "small-" + scenario.split("-", 1)[1]
                vs_folder += "; " + _cell(like, (scenario, "service", count),
                                          (small, "folder", count)) + " its 200s"
            gains = ["", "", ""]
            if count == top and top != one:
                gains = [_cell(like, (scenario, k, top), (scenario, k, one))
                         for k in LIKE_KINDS]
            rows.append([like_label(scenario), count,
                         *(fmt_num(x.get("median", {}).get("rps")) for x in (s, f, fl)),
                         vs_folder,
                         _cell(like, (scenario, "service", count), (scenario, "floor", count)),
                         f"{fmt_num(s.get('median', {}).get('p99_ms'))} / "
                         f"{fmt_num(f.get('median', {}).get('p99_ms'))}",
                         *gains])
    return markdown_table(
        ["requests", "processes", "service req/s", "folder req/s", "floor req/s",
         "service / folder", "service / floor", "p99 ms service / folder",
         f"gain 1→{top} service", f"gain 1→{top} folder", f"gain 1→{top} floor"],
        rows, [False] + [True] * 10)


def like_targets(like: dict) -> list[list[str]]:
    """Issue 29's targets against the like-with-like medians, as rows of (what,
    measured, per round, target, verdict), at every process count."""
    counts = like.get("counts", [])
    scen = like.get("scenarios", {})
    rows = []

    def errors(*keys: tuple[str, str, int]) -> int:
        return sum(r.get("errors") or 0 for k in keys for r in _like(like, *k).get("runs", []))

    def row(what: str, a, b, goal: float, op: str = ">=") -> None:
        r, per = like_ratio(like, a, b)
        rows.append([what, fmt_ratio(r, 1) if r is not None else "—",
                     fmt_ratio_range(per), f"{'≥' if op == '>=' else '≤'} {goal:g}×",
                     check(r, op, goal, errors(a, b))])
    for c in counts:
        for s in scen:
            label = f"{like_label(s)}, {c} process{'es' if c > 1 else ''}"
            if s.startswith("small-"):
                row(f"{label}: service / folder", (s, "service", c), (s, "folder", c), 2)
                sp = _like(like, s, "service", c).get("median", {}).get("p99_ms")
                fp = _like(like, s, "folder", c).get("median", {}).get("p99_ms")
                rows.append([f"{label}: p99 service / folder",
                             f"{fmt_num(sp)} / {fmt_num(fp)} ms", "", "no worse",
                             check(sp / fp if sp and fp else None, "<=", 1,
                                   errors((s, "service", c), (s, "folder", c)))])
                row(f"{label}: service / floor", (s, "service", c), (s, "floor", c), 0.5)
            elif s.startswith("304-"):
                small = "small-" + s.split("-", 1)[1]
                row(f"{label}: service / folder's 200s", (s, "service", c),
                    (small, "folder", c), 3)
                row(f"{label}: service / floor", (s, "service", c), (s, "floor", c), 0.5)
            elif s == "seek":
                row(f"{label}: service / folder", (s, "service", c), (s, "folder", c), 2)
    if len(counts) > 1:
        one, top = counts[0], counts[-1]
        for s in scen:
            sg, sper = like_ratio(like, (s, "service", top), (s, "service", one))
            fg, fper = like_ratio(like, (s, "folder", top), (s, "folder", one))
            r = sg / fg if sg and fg else None
            rows.append([f"{like_label(s)}: gain 1→{top}, service / folder",
                         fmt_ratio(r, 1) if r is not None else "—",
                         fmt_ratio_range(round_ratios(sper, fper)), "≥ 0.9×",
                         check(r, ">=", 0.9, errors((s, "service", one), (s, "service", top),
                                                    (s, "folder", one), (s, "folder", top)))])
    return rows


def like_per_cpu(like: dict, scenario: str, kind: str, count: int) -> float | None:
    """The median over the rounds of requests per CPU-second of the target's own
    processes (req/s over the cores they used): on a machine shared with other work,
    a server that got less CPU in a round answers less, but not less per CPU-second."""
    per = [r["rps"] / r["server_cpu"] for r in _like(like, scenario, kind, count).get("runs", [])
           if r.get("rps") and r.get("server_cpu")]
    return statistics.median(per) if per else None


def like_cpu_table(like: dict) -> str:
    """Requests per CPU-second of each target's processes (PostgreSQL's not counted),
    per scenario and process count, with the service's ratios to the folder and floor."""
    rows = []
    for scenario in like.get("scenarios", {}):
        for count in like.get("counts", []):
            s, f, fl = (like_per_cpu(like, scenario, k, count) for k in LIKE_KINDS)
            rows.append([like_label(scenario), count, fmt_num(s), fmt_num(f), fmt_num(fl),
                         fmt_ratio(s, f), fmt_ratio(s, fl)])
    return markdown_table(["requests", "processes", "service req/CPU-s", "folder req/CPU-s",
                           "floor req/CPU-s", "service / folder", "service / floor"],
                          rows, [False] + [True] * 6)
