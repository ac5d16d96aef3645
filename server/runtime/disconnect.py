"""Work that stops when its client goes away.

The server runs aiohttp with handler cancellation off (its default): a client that
closes its connection does not cancel the handler's task, which runs on to its end and
then fails to write an answer nobody reads. For most handlers that costs little. For
processing an upload it costs up to MEDIA_PROCESSING_TIMEOUT_SECONDS of a worker's CPU
(a 186 KB scan bomb: 50 s), spent on media that would then be stored for a client that
no longer waits for its id and will likely send it again.

:func:`cancelled_when_gone` watches the connection only around such a step and, once
the peer is gone, cancels the handler's task: the step sees CancelledError, as it would
with handler cancellation on, and its own cleanup runs (a worker running a cancelled
job is killed; ``Job.finish`` removes whatever it stored; the audit row says
``client_gone``; the request counts as a 499).

What is observable with handler cancellation off (aiohttp 3.14, web_protocol.py):
``RequestHandler.connection_lost`` calls ``force_close``, which sets the protocol's
``transport`` to None, so ``request.transport`` is None from then on; a connection the
server itself is closing has ``is_closing()``. No event is offered (the request's
payload gets the exception, but a body read to its end never reports it), hence the
poll, a few times a second: cheap beside the processing it guards.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from server.observability.paths import safe_path

log = logging.getLogger("media.disconnect")

# How often the connection is looked at: a worker burns at most this much CPU for
# nobody, and four looks a second cost nothing beside a decode.
POLL_SECONDS = 0.25


def client_gone(request: web.Request) -> bool:
    """Whether the request's connection is closed, or closing (by the peer or us)."""
    transport = request.transport
    return transport is None or transport.is_closing()


@contextlib.asynccontextmanager
async def cancelled_when_gone(request: web.Request,
                              poll_seconds: float = POLL_SECONDS) -> AsyncIterator[None]:
    """Run the block in the handler's task; if the request's connection closes before
    the block ends, the task is cancelled (the block raises CancelledError, which
    propagates: there is nobody left to answer). The block must let CancelledError
    through, as any handler must."""
    task = asyncio.current_task()
    assert task is not None

    async def watch() -> None:
        while not client_gone(request):
            await asyncio.sleep(poll_seconds)
        # aiohttp writes no access line for a cancelled handler: this is the trace.
        log.info("client gone: %s %s stopped", request.method, safe_path(request))
        task.cancel()

    # The watcher runs only while the task waits inside the block, so its cancel lands
    # at an await of the block, never after it.
    watcher = asyncio.ensure_future(watch())
    try:
        yield
    finally:
        watcher.cancel()
