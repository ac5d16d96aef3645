"""What the documentation promises about the code: the README is a front door (short,
its layout section naming every part of server/), docs/configuration.md names exactly
the variables load_settings reads, docs/http-api.md's error table every code of the one
error block (which nothing else bypasses), and every relative link leads somewhere."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
import dataclasses
import inspect
import re
from pathlib import Path

from server import errors, settings
from server.settings import Settings, load_settings
from tests.procs import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
DOCS = REPO / "docs"
SERVER = REPO / "server"
README_MAX_LINES = 300


def test_readme_is_a_front_door():
    assert len(README.splitlines()) <= README_MAX_LINES


def _layout() -> str:
    section = README.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_layout_section_names_every_package_and_top_module():
    layout = _layout()
    packages = sorted(p.name + "/" for p in SERVER.iterdir()
                      if (p / "__init__.py").exists())
    modules = sorted(p.name for p in SERVER.glob("*.py") if p.name != "__init__.py")
    missing = [name for name in packages + modules
               if not re.search(rf"(^|\s){re.escape(name)}(\s|$)", layout, re.M)]
    assert missing == []


class _Recording(Mapping):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _read_by_load_settings() -> set[str]:
    # Every reader runs whatever the values (blank = the default), so an empty
    # environment asks for every variable.
    env = _Recording()
    load_settings(env)
    return env.asked


# Documented beside the settings, read by the tests rather than by load_settings.
NOT_READ_BY_THE_SERVER = {"TEST_DATABASE_URL"}


def _documented_settings() -> set[str]:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            first_column = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_column))
    return names


def test_the_recording_environment_sees_the_reads():
    asked = _read_by_load_settings()
    assert {"DATABASE_URL", "PORT", "MEDIA_CHUNK_BYTES", "ZAPI_TOKEN"} <= asked


def test_configuration_doc_names_every_setting_the_code_reads():
    assert sorted(_read_by_load_settings() - _documented_settings()) == []


def test_configuration_doc_names_no_setting_the_code_no_longer_reads():
    stale = _documented_settings() - _read_by_load_settings() - NOT_READ_BY_THE_SERVER
    assert sorted(stale) == []
    for name in NOT_READ_BY_THE_SERVER:   # and those still are read where they say
        assert any(name in p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("*.py")
                   if p.name != "test_docs.py")


def _documented_sections() -> dict[str, set[str]]:
    """docs/configuration.md's ``## `settings.X` `` headings and the variables below each."""
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            found = re.fullmatch(r"## `settings\.(\w+)`", line)
            current = sections.setdefault(found.group(1), set()) if found else None
        elif current is not None and line.startswith("| `"):
            current.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return sections


def test_configuration_doc_has_a_table_per_section_of_settings():
    sections = _documented_sections()
    assert sorted(sections) == sorted(f.name for f in dataclasses.fields(Settings))
    for name, documented in sections.items():
        # Each section is read by its own builder in server/settings.py: _tus(env), ...
        builder = getattr(settings, f"_{name}")
        env = _Recording()
        builder(env, **({"workers": 1} if "workers" in inspect.signature(builder).parameters
                        else {}))
        assert (name, sorted(documented)) == (name, sorted(env.asked))


def _declared_codes() -> set[str]:
    return {cls.code for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.MediaError)
            and cls is not errors.MediaError}


def test_http_api_error_table_lists_every_code():
    text = (DOCS / "http-api.md").read_text(encoding="utf-8")
    table = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    assert [c for c in sorted(_declared_codes()) if f"`{c}`" not in table] == []


def test_error_codes_are_unique_and_only_built_in_errors_py():
    classes = [cls for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.MediaError)
               and cls is not errors.MediaError]
    assert len({c.code for c in classes}) == len(classes)
    # Handlers raise the block's errors; none writes an error body of its own.
    offenders = [str(p.relative_to(REPO)) for p in SERVER.rglob("*.py")
                 if p.name != "errors.py"
                 and re.search(r"error_response\(|json_response\(\{\s*\"error\"",
                               p.read_text(encoding="utf-8"))]
    assert offenders == []


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _anchors(doc: Path) -> set[str]:
    """GitHub's ids for a document's headings: lower case, punctuation dropped,
    spaces as hyphens."""
    text = _FENCE.sub("", doc.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def _broken_links(doc: Path) -> list[str]:
    broken = []
    for target in _LINK.findall(_FENCE.sub("", doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):   # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    return broken


def test_the_link_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("# A heading\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](there.md) [ok](there.md#a-heading) [no](gone.md) "
                   "[no](there.md#elsewhere) [web](https://example.com/x)\n")
    assert _broken_links(doc) == ["gone.md", "there.md#elsewhere"]


def test_every_relative_link_in_the_readme_and_docs_exists():
    broken = {str(doc.relative_to(REPO)): links
              for doc in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
              if (links := _broken_links(doc))}
    assert broken == {}


def test_http_api_doc_names_every_route():
    # Every route the app registers (tus's included) appears in docs/http-api.md, its
    # path parameters by any name ({id} there, {mediaId} in the code).
    from aiohttp import web

    from server.api.routes import setup_routes
    app = web.Application()
    setup_routes(app)

    def shape(text: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", text)
    doc = shape((DOCS / "http-api.md").read_text())
    paths = {shape(r.resource.get_info().get("path") or r.resource.get_info()["formatter"])
             for r in app.router.routes()}
    assert len(paths) > 20
    assert sorted(p for p in paths if p not in doc) == []
