"""Which message owns which legacy file: pure functions over names and URL strings.

A message's column holds the old URL in whatever form the chat wrote it: a path
(``/uploads/media/a.jpg``), the same without the leading slash, or a full URL with a
host (``https://chat.example.com/uploads/media/a.jpg?v=2``), percent-encoded or not.
All of them designate the legacy name ``a.jpg``; anything else designates nothing.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

from server.legacy.paths import legacy_name

Ref = tuple[int, str]   # (message id, the URL as the column holds it)


def normalise_prefix(prefix: str) -> str:
    """'/uploads/media/' from 'uploads/media', '/uploads/media' or '/uploads/media/'."""
    inner = prefix.strip().strip("/")
    if not inner:
        raise ValueError("the URL prefix must name a folder, e.g. /uploads/media/")
    return f"/{inner}/"


def name_from_url(url: str, prefix: str) -> str | None:
    """The legacy name ``url`` points at under ``prefix`` (normalised), or None."""
    url = url.strip()
    if "://" in url or url.startswith("//"):
        try:
            path = urlsplit(url).path
        except ValueError:   # a malformed URL (bad port, bad IPv6 literal)
            return None
    else:
        path = url.split("#", 1)[0].split("?", 1)[0]
        if not path.startswith("/"):
            path = "/" + path
    if not path.startswith(prefix):
        return None
    # Raw spaces and other characters a chat may have stored unencoded are encoded
    # first, so that legacy_name() sees one consistent form (existing escapes kept).
    return legacy_name(quote(path[len(prefix):], safe="/%"))


@dataclasses.dataclass
class Plan:
    """What an import will do with each file of the folder."""
    owners: dict[str, int]              # file -> the message it will belong to
    referrers: dict[str, list[Ref]]     # file -> every message pointing at it
    orphans: list[str]                  # files no message points at
    missing: list[tuple[int, str]]      # (message, name) pointing at no file


def refs_by_name(refs: Iterable[Ref], prefix: str) -> dict[str, list[Ref]]:
    """Group messages by the legacy name their URL designates (others are dropped)."""
    found: dict[str, list[Ref]] = {}
    for message_id, url in refs:
        name = name_from_url(url, prefix)
        if name is not None:
            found.setdefault(name, []).append((message_id, url))
    return found


def plan(files: Iterable[str], by_name: dict[str, list[Ref]],
         orphans_to: int | None = None) -> Plan:
    """Owners, orphans and missing files. A file several messages point at belongs to
    the oldest (lowest id); orphans go to ``orphans_to`` when given."""
    names = set(files)
    owners = {n: min(m for m, _ in refs) for n, refs in by_name.items() if n in names}
    orphans = sorted(names - owners.keys())
    if orphans_to is not None:
        owners.update((n, orphans_to) for n in orphans)
    missing = sorted((m, n) for n, refs in by_name.items() if n not in names for m, _ in refs)
    return Plan(owners, {n: r for n, r in by_name.items() if n in names}, orphans, missing)
