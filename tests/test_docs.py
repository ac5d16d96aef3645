"""What the README promises about the code: its layout section names every part of
server/, and its error table every code of the one error block (which nothing else
bypasses)."""
from __future__ import annotations

import re

from server import errors
from tests.procs import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
SERVER = REPO / "server"


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


def _declared_codes() -> set[str]:
    return {cls.code for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.MediaError)
            and cls is not errors.MediaError}


def test_readme_error_table_lists_every_code():
    assert [c for c in sorted(_declared_codes()) if f"`{c}`" not in README] == []


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
