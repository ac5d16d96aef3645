"""The layers of server/, held by reading its source: no import cycle between its
packages, no import of another package's _private name, every handler under api/,
and a top level that keeps only what every package shares.

Every import counts, wherever it sits (module level, under TYPE_CHECKING, or inside a
function): a function-local import is how a cycle hides, not how it goes away.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from tests.procs import REPO

SERVER = REPO / "server"

# Packages that hold domain logic only: they import nothing from the HTTP layer.
FEATURES = ("security", "legacy", "zapi", "tus", "processing", "hygiene")
MAX_TOP_LEVEL_MODULES = 8


def module_name(path: Path) -> str:
    """server/tus/store.py -> server.tus.store; server/tus/__init__.py -> server.tus."""
    parts = list(path.relative_to(SERVER.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of server/, by dotted name."""
    return {module_name(p): p for p in sorted(SERVER.rglob("*.py"))}


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    if path.name != "__init__.py":
        package.pop()
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(module: str, path: Path, known: set[str],
            source: str | None = None) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import in the file, under
    server only. ``from server.x import y`` is an import of server.x.y when that is a
    module, else of name y from server.x."""
    found: list[tuple[str, str | None]] = []
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, None) if sub in known else (base, alias.name))
    return [(m, n) for m, n in found if m == "server" or m.startswith("server.")]


def node_of(module: str) -> str:
    """The graph's node for a module: its sub-package of server/ (server.tus), or the
    module itself when it sits at the top level (server.settings)."""
    return ".".join(module.split(".")[:2])


def graph() -> dict[tuple[str, str], list[str]]:
    """Edges between nodes, each with the imports (module to module) behind it."""
    known = set(modules())
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, path in modules().items():
        for target, _ in imports(module, path, known):
            a, b = node_of(module), node_of(target)
            if a != b and b != "server":
                edges[(a, b)].append(f"{module} -> {target}")
    return edges


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm)."""
    succ: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(succ) | {b for _, b in edges}):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_packages():
    edges = graph()
    lines = []
    for component in cycles(edges):
        lines.append("cycle: " + ", ".join(component))
        members = set(component)
        for (a, b), why in sorted(edges.items()):
            if a in members and b in members:
                lines += [f"  {edge}" for edge in sorted(set(why))]
    assert not lines, "\n".join(lines)


def test_no_import_of_another_packages_private_name():
    known = set(modules())
    bad = []
    for module, path in modules().items():
        for target, name in imports(module, path, known):
            private = [p for p in target.split(".") + [name or ""] if p.startswith("_")
                       and not p.startswith("__")]
            if private and node_of(module) != node_of(target):
                bad.append(f"{module} -> {target}" + (f".{name}" if name else ""))
    assert not bad, "\n".join(bad)


def test_feature_packages_import_nothing_from_api():
    known = set(modules())
    bad = [f"{module} -> {target}"
           for module, path in modules().items()
           if module.split(".")[1:2] and module.split(".")[1] in FEATURES
           for target, _ in imports(module, path, known)
           if node_of(target) == "server.api"]
    assert not bad, "\n".join(bad)


def test_every_route_is_registered_in_api():
    """Routes are added (add(app, ...), router.add_*) only by server/api/ modules and
    by the registrar itself (security/access.py's add, which records each scope)."""
    bad = []
    for module, path in modules().items():
        if node_of(module) == "server.api" or module == "server.security.access":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name.startswith("add_route") or name in ("add_get", "add_post") \
                        or (name == "add" and node.args and getattr(
                            node.args[0], "id", "") == "app"):
                    bad.append(f"{module}:{node.lineno}")
    assert not bad, "routes added outside server/api/: " + ", ".join(bad)


def test_top_level_keeps_at_most_eight_modules():
    top = sorted(p.name for p in SERVER.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_the_graph_sees_what_it_must():
    """The reader finds relative, function-local and TYPE_CHECKING imports, so that a
    green run above means something."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from ..c import d\n"
        "if TYPE_CHECKING:\n"
        "    import server.e\n"
        "def f():\n"
        "    from server.g import _h\n"
    )
    found = imports("server.x.a", SERVER / "x" / "a.py", {"server.x.b"}, source)
    assert sorted(found, key=str) == sorted(
        [("server.x.b", None), ("server.c", "d"), ("server.e", None), ("server.g", "_h")],
        key=str)
    assert cycles({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) \
        == [["a", "b", "c"]]


# The tables of the bytes (sql/contents.sql, sql/chunks.sql): only server/store/ runs
# the statements that name them; every other package goes through the store.
BYTES_TABLES = re.compile(r"\b(content_chunks|media_contents)\b")


def _without_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def test_only_the_store_runs_statements_on_the_chunk_and_content_tables():
    from server.store.sqlfiles import Q
    touching = {n for n in Q.names()
                if BYTES_TABLES.search(_without_comments(getattr(Q, n).sql))}
    assert {"append_chunks", "serve_chunks", "claim_stored_content",
            "reclaim_orphaned_contents", "tus_append_chunk"} <= touching
    offenders = []
    for module, path in modules().items():
        if module == "server.store" or module.startswith("server.store."):
            continue
        source = path.read_text()
        offenders += [f"{module}: Q.{n}" for n in sorted(touching)
                      if re.search(rf"\bQ\.{n}\b", source)]
        # Nor SQL of its own naming them (a string that is not a docstring).
        tree = ast.parse(source)
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        offenders += [f"{module}: a string names {m.group(0)}"
                      for n in ast.walk(tree)
                      if isinstance(n, ast.Constant) and isinstance(n.value, str)
                      and id(n) not in docstrings
                      for m in [BYTES_TABLES.search(n.value)] if m]
    assert offenders == []


def test_only_the_store_imports_the_database_driver():
    # Other packages take a connection's type, the database errors and connect() from
    # server/store/pool.py: a change of driver stays in the store.
    offenders = []
    for module, path in modules().items():
        if module == "server.store" or module.startswith("server.store."):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{module}: imports {n}" for n in names
                          if n == "asyncpg" or n.startswith("asyncpg.")]
    assert offenders == []
