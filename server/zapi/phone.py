"""Who a delivery goes to: a phone number or a group id, as Z-API takes them. Pure."""
from __future__ import annotations

import re

# Digits only, country code first (5511999999999): E.164 allows at most 15, and no
# country's full number is shorter than 10 with its code in practice.
_PHONE = re.compile(r"[0-9]{10,15}")
# Group ids: 120363019502650977-group, and the older <creator>-<timestamp>-group.
_GROUP = re.compile(r"[0-9]{5,30}(?:-[0-9]{1,20})?-group")


def parse_phone(value: object) -> str | None:
    """The phone or group id to send to, or None if ``value`` is neither. No
    normalisation: '+55 11 ...' is refused rather than guessed at."""
    if not isinstance(value, str):
        return None
    if _PHONE.fullmatch(value) or _GROUP.fullmatch(value):
        return value
    return None
