"""The console's files keep to what its Content-Security-Policy allows without
'unsafe-inline' or 'unsafe-eval': no inline script or style, no event-handler
attributes, no markup built from strings; every file is one the route serves."""
from __future__ import annotations

import re

import pytest

from server.api.console import _NAME, FOLDER

FILES = sorted(FOLDER.iterdir())
HTML = [p for p in FILES if p.suffix == ".html"]
JS = [p for p in FILES if p.suffix == ".js"]


def test_every_file_has_a_name_the_route_serves():
    assert {p.name for p in FILES} >= {"index.html", "app.js", "console.css"}
    assert [p.name for p in FILES if not _NAME.fullmatch(p.name)] == []


@pytest.mark.parametrize("path", HTML, ids=lambda p: p.name)
def test_html_has_no_inline_script_or_style(path):
    text = path.read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", text, re.S | re.I)
    assert scripts and all('src="/console/' in attrs and body.strip() == ""
                           for attrs, body in scripts)
    assert not re.search(r"<style\b", text, re.I)
    assert not re.search(r"\sstyle\s*=", text, re.I)
    assert not re.search(r"\son[a-z]+\s*=", text, re.I)
    assert "javascript:" not in text.lower()
    # Nothing from another origin.
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text, re.I)


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_modules_build_no_markup_from_strings(path):
    text = path.read_text(encoding="utf-8")
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                  "eval(", "new Function", ".style.", "setAttribute('style'",
                  "localStorage", "document.cookie"):
        assert risky not in text, f"{path.name}: {risky}"
    # Imports stay in the folder (no CDN, no other origin).
    specs = re.findall(r"""^import\s.*?from\s+['"]([^'"]+)['"]""", text, re.M | re.S)
    specs += re.findall(r"""\bimport\(\s*['"]([^'"]+)['"]""", text)
    assert specs or path.name in ("api.js", "dom.js", "blurhash.js")
    for spec in specs:
        assert spec.startswith("./"), f"{path.name}: {spec}"
