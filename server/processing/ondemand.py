"""Thumbnails on request: found among the media's variants, or made once and stored.

A thumbnail is a variant of its media (``thumb_96x96_crop``, ``thumb_320x240_scale_anim``)
stored by variants.store_variant like a preview: served like the media (Range, ETag
of its own bytes, conditionals), gone with the media. Making one costs a decode, so it
is made once however many ask at the same moment:
- in one process, every request for it waits on the same task (which goes on if the
  first asker leaves: nobody is left with half a thumbnail);
- across processes and instances, the maker holds a PostgreSQL advisory lock on
  (media, name) while it renders and stores, and looks again once it holds it; the
  others poll for the variant (holding no connection) until it is there or the lock
  is free for them to try.
The decode runs in the processing worker pool, within the time and memory limits of
an upload's processing (workers.py). A source that cannot be made a thumbnail of (422)
is remembered for a minute per process, so a client asking again and again does not
have it decoded again each time.
"""
from __future__ import annotations

import asyncio
import logging
import time

from server.asyncutil import consume
from server.errors import (
    InvalidMedia,
    MediaNotFound,
    MediaQuarantined,
    MediaTooComplex,
    NoThumbnail,
    ServiceUnavailable,
)
from server.http.thumbnails import ThumbnailRequest
from server.processing import costs, thumbnails, variants
from server.processing.pipeline import BYTES_PER_SECOND, Processing
from server.processing.spool import Spool
from server.processing.workers import Work
from server.store.media import MediaRecord, MediaStore, StorageCorrupt
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

POLL_FIRST, POLL_MAX = 0.05, 0.5
# A source that would not make a thumbnail is not decoded again for every request of a
# client that keeps asking: its refusal is remembered this long (per process).
REFUSAL_SECONDS = 60.0
MAX_REFUSALS = 1000
# Past the maker's own time limit, how long a waiter keeps waiting before a 503.
WAIT_SLACK = 10.0


def limits(processing: Processing) -> thumbnails.Limits:
    p = processing.policy
    return thumbnails.Limits(p.thumbnail_max_source_pixels, p.thumbnail_max_animated_bytes)


async def thumbnail(store: MediaStore, processing: Processing, media_id: int,
                    req: ThumbnailRequest) -> MediaRecord:
    """The servable record of the thumbnail answering ``req`` for ``media_id``, made
    and stored first if it is not yet. MediaNotFound, NoThumbnail (audio, documents),
    InvalidMedia / MediaTooComplex (422) for a source that cannot be made one of."""
    rec = await store.stat_for_serving(media_id)
    if rec.quarantine_reason is not None:   # nothing is made of it, nothing served
        raise MediaQuarantined()
    if not thumbnails.has_thumbnails(rec.media_type):
        raise NoThumbnail(f"{rec.media_type} files have no thumbnails")
    size = thumbnails.choose(processing.policy.thumbnail_sizes, req.width, req.height,
                             req.method)
    animated = thumbnails.animates(rec.mime_type, req.animated)
    name = thumbnails.variant_name(size, animated)
    found = await variants.find_variant(store, media_id, name)
    if found is not None:
        return found
    key = (media_id, name)
    refused = processing.thumbnail_refusals.get(key)
    if refused is not None and refused[0] > time.monotonic():
        raise type(refused[1])(refused[1].message)
    task = processing.making.get(key)
    if task is None:
        task = asyncio.ensure_future(_make_once(store, processing, rec, size, animated, name))
        processing.making[key] = task
        task.add_done_callback(lambda t: _done(processing, key, t))
    return await asyncio.shield(task)


def _done(processing: Processing, key: tuple[int, str], task: asyncio.Future) -> None:
    processing.making.pop(key, None)
    consume(task)
    if not task.cancelled() and isinstance(task.exception(), (InvalidMedia, MediaTooComplex)):
        refusals = processing.thumbnail_refusals
        refusals[key] = (time.monotonic() + REFUSAL_SECONDS, task.exception())
        while len(refusals) > MAX_REFUSALS:
            refusals.pop(next(iter(refusals)))


def _seconds(processing: Processing, rec: MediaRecord) -> float:
    return processing.policy.timeout_seconds + rec.file_size / BYTES_PER_SECOND


async def _make_once(store: MediaStore, processing: Processing, rec: MediaRecord,
                     size: thumbnails.ThumbSize, animated: bool, name: str) -> MediaRecord:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 2 * _seconds(processing, rec) + WAIT_SLACK
    delay = POLL_FIRST
    while True:
        async with store.connection() as conn:
            if await Q.thumbnail_try_lock.fetchval(conn, media_id=rec.id, name=name):
                try:
                    # Made by another instance between our look and the lock?
                    found = await variants.find_variant(store, rec.id, name)
                    if found is None:
                        await _make(store, processing, rec, size, animated, name)
                        found = await variants.find_variant(store, rec.id, name)
                    if found is None:     # the media went meanwhile
                        raise MediaNotFound()
                    return found
                finally:
                    await _unlock(conn, rec.id, name)
        await asyncio.sleep(delay)
        delay = min(POLL_MAX, delay * 2)
        found = await variants.find_variant(store, rec.id, name)
        if found is not None:
            return found
        if loop.time() > give_up:
            raise ServiceUnavailable("the thumbnail is still being made; try again")


async def _unlock(conn, media_id: int, name: str) -> None:
    try:
        await Q.thumbnail_unlock.fetchval(conn, media_id=media_id, name=name)
    except BaseException:
        # Not unlocked: the connection must not go back to the pool holding the lock
        # (store/pool.py resets nothing on release).
        conn.terminate()
        raise


async def _make(store: MediaStore, processing: Processing, rec: MediaRecord,
                size: thumbnails.ThumbSize, animated: bool, name: str) -> None:
    if rec.file_size == 0:
        raise InvalidMedia("an empty file has no thumbnail")
    spool = await Spool.create()
    try:
        try:
            async for piece in store.read(rec, 0, rec.file_size - 1):
                await spool.write(piece)
        except StorageCorrupt:
            raise MediaNotFound() from None
        await spool.close()
        policy = processing.policy
        memory = await processing.run(costs.estimate, spool.path, rec.media_type,
                                      rec.mime_type, rec.file_size,
                                      policy.thumbnail_max_source_pixels)
        seconds = _seconds(processing, rec)
        made = await processing.run(Work(thumbnails.render, seconds, memory), spool.path,
                                    rec.mime_type, rec.media_type, size, animated,
                                    limits(processing), time.monotonic() + seconds)
    finally:
        await spool.remove()
    try:
        await variants.store_variant(store, rec.id, variants.VariantSource(
            name, made.mime_type, made.dimensions, variants.from_bytes(made.data)))
    except Exception:
        if await _gone(store, rec.id):      # deleted while it was being made
            raise MediaNotFound() from None
        raise


async def _gone(store: MediaStore, media_id: int) -> bool:
    try:
        await store.stat(media_id)
    except MediaNotFound:
        return True
    return False
