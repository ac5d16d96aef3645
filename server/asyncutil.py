"""A small asyncio helper shared by the store and the sending path."""
from __future__ import annotations

import asyncio


def consume(fut: asyncio.Future) -> None:
    """Done callback for a future (or task) whose failure may have nobody left to await
    it (a cancelled handler, a client gone, an abandoned ping): asyncio would otherwise
    log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()
