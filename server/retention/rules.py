"""MEDIA_RETENTION rules and the ages they (and ``purge --older-than``) are written in.

``video:365d,audio:730d,*:1825d``: each media type gets the age of its own rule; ``*``
covers every type without one. A type with no rule and no ``*`` is kept forever.
Ages are a whole number and a unit: ``h`` hours, ``d`` days, ``w`` weeks (no months
or years: their length varies, and a purge must say exactly what it removes).
"""
from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

from server.http.media_types import MEDIA_TYPES

ANY = "*"
UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
# Longer than any media has existed: a typo of extra digits is refused, not kept forever.
MAX_AGE = timedelta(days=100 * 366)
_AGE = re.compile(r"^([0-9]{1,6})([a-z])$")


@dataclasses.dataclass(frozen=True)
class RetentionRule:
    """Media of ``media_type`` (``ANY``: every type without a rule of its own) created
    more than ``max_age`` ago go."""
    media_type: str
    max_age: timedelta

    def __str__(self) -> str:
        return f"{self.media_type}:{format_age(self.max_age)}"


def parse_age(text: str) -> timedelta:
    """``365d`` → 365 days; ValueError for anything else (units: h, d, w)."""
    m = _AGE.match(text.strip().lower())
    if m is None or m.group(2) not in UNITS:
        raise ValueError(f"{text.strip()!r} is not an age: a whole number and a unit "
                         f"({', '.join(UNITS)}), as in 365d")
    age = timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])
    if not timedelta(0) < age <= MAX_AGE:
        raise ValueError(f"{text.strip()!r}: an age must be above 0 and at most "
                         f"{MAX_AGE.days} days")
    return age


def format_age(age: timedelta) -> str:
    """The shortest spelling parse_age reads back to ``age``."""
    seconds = int(age.total_seconds())
    for unit in ("w", "d", "h"):
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_rules(text: str) -> tuple[RetentionRule, ...]:
    """``video:365d,*:1825d`` → rules, specific types first, ``*`` last; ``""`` → none.
    ValueError names what is wrong (an unknown type, a type given twice, a bad age)."""
    rules: dict[str, RetentionRule] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        media_type, sep, age = (s.strip().lower() for s in item.partition(":"))
        if not sep:
            raise ValueError(f"{item!r} is not TYPE:AGE (as in video:365d)")
        if media_type != ANY and media_type not in MEDIA_TYPES:
            raise ValueError(f"{media_type!r} is not a media type "
                             f"({', '.join(MEDIA_TYPES)} or {ANY})")
        if media_type in rules:
            raise ValueError(f"{media_type} has two rules")
        rules[media_type] = RetentionRule(media_type, parse_age(age))
    return tuple(sorted(rules.values(), key=lambda r: r.media_type == ANY))


def others(rules: tuple[RetentionRule, ...]) -> list[str]:
    """The media types with a rule of their own: what ``*`` leaves to them."""
    return [r.media_type for r in rules if r.media_type != ANY]


@dataclasses.dataclass(frozen=True)
class Selection:
    """What one purge takes: complete media of ``media_type`` (None: any type) but
    none of ``except_types``, created more than ``older_than`` ago. ``label`` says
    where it came from (a rule, or the command line), for logs and the audit row."""
    older_than: timedelta
    media_type: str | None = None
    except_types: tuple[str, ...] = ()
    label: str = ""


def selections(rules: tuple[RetentionRule, ...]) -> list[Selection]:
    """One selection per rule; ``*``'s leaves out the types that have their own rule
    (a video kept 365 days by ``video:365d`` is not taken by a shorter ``*:30d``)."""
    typed = tuple(others(rules))
    return [Selection(r.max_age, media_type=r.media_type, label=f"rule {r}")
            if r.media_type != ANY else
            Selection(r.max_age, except_types=typed, label=f"rule {r}")
            for r in rules]
