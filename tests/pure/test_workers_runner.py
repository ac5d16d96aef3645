"""Stopping the background workers: every one ends with the app, even one that lost a
cancellation (Python 3.11's ``asyncio.wait_for`` returns the inner result when the
cancel lands as that result arrives, and a worker loop that lost its cancel runs on)."""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server import asyncutil
from server.asyncutil import cancel_and_wait
from server.workers.runner import workers_ctx


async def _loses_first_cancels(lost: list[int], times: int) -> None:
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if len(lost) == times:
                raise
            lost.append(1)   # as wait_for does when its inner future just completed
            asyncio.current_task().uncancel()


async def test_a_worker_that_lost_its_cancel_still_stops_with_the_app(monkeypatch):
    monkeypatch.setattr(asyncutil, "RECANCEL_SECONDS", 0.05)
    lost: list[int] = []
    stopped: list[str] = []

    async def stubborn(app):
        await _loses_first_cancels(lost, 3)

    async def plain(app):
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.append("plain")

    ctx = workers_ctx([stubborn, plain])(web.Application())
    await anext(ctx)
    await asyncio.sleep(0)
    # The app stops: the context's second half must end, not wait forever.
    closing = asyncio.ensure_future(anext(ctx, None))
    try:
        done, _ = await asyncio.wait({closing}, timeout=5)
        assert done, f"still stopping the workers after 5 s; lost {len(lost)} cancel(s)"
    finally:
        for _ in range(10):   # a failed stop must not hang the test run too
            for t in asyncio.all_tasks():
                if t.get_name().startswith("worker:") or t is closing:
                    t.cancel()
            await asyncio.sleep(0.01)
    assert lost == [1, 1, 1]
    assert stopped == ["plain"]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("worker:")]


async def test_a_worker_that_had_failed_is_logged_when_the_app_stops(caplog):
    async def broken(app):
        raise RuntimeError("boom")

    async def plain(app):
        await asyncio.sleep(3600)

    ctx = workers_ctx([broken, plain])(web.Application())
    await anext(ctx)
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="server.workers.runner"):
        await asyncio.wait_for(anext(ctx, None), 5)
    assert "worker:broken had failed" in caplog.text and "boom" in caplog.text


async def test_cancel_and_wait_returns_at_once_for_a_task_that_ends_on_its_cancel():
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await cancel_and_wait(task)
    assert task.cancelled() and loop.time() - t0 < 0.05


async def test_cancel_and_wait_repeats_the_cancel_a_task_lost(monkeypatch):
    monkeypatch.setattr(asyncutil, "RECANCEL_SECONDS", 0.05)
    lost: list[int] = []
    task = asyncio.create_task(_loses_first_cancels(lost, 2))
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(cancel_and_wait(task))
    try:
        await asyncio.wait({waiting}, timeout=5)
        assert task.cancelled() and lost == [1, 1]
    finally:
        for _ in range(3):   # a failed stop must not hang the test run too
            task.cancel()
            waiting.cancel()
            await asyncio.sleep(0.01)


async def test_cancel_and_wait_leaves_a_failure_on_the_task():
    async def broken():
        raise RuntimeError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)


async def test_a_workers_own_cleanup_after_its_cancel_is_not_cut_short():
    # The heartbeat says goodbye in its finally (up to 2 s): one cancel, then time.
    said: list[str] = []

    async def polite(app):
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.5)
            said.append("goodbye")

    ctx = workers_ctx([polite])(web.Application())
    await anext(ctx)
    await asyncio.sleep(0)
    await asyncio.wait_for(anext(ctx, None), 10)
    assert said == ["goodbye"]
