"""The processing pipeline every received file goes through (upload today; URL import,
legacy files and tus later, all via ingest.receive).

While the bytes stream in they are spooled to a temporary file (spool.py) where the
checks need the whole file (images, video and audio: an MP4's index can sit at its end;
archives), or checked as they pass (other documents: documents.py), and, for types
whose bytes are kept as sent (documents; video and audio with
MEDIA_KEEP_VIDEO_METADATA), written to the store at the same time. When the request is
complete, ``Job.finish`` does the CPU work in a worker process, bounded in time and
memory (workers.py), then stores what was decided: the re-encoded or stripped image,
the remuxed video or audio (remux.py), the facts (dimensions, duration, waveform,
compression), the variants, and makes the media visible. Any failure, at any point,
removes the spool and everything stored.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid

from aiohttp import web

from server.asyncutil import cancel_and_wait
from server.errors import MediaError, UnsupportedMediaType
from server.http.media_types import MediaKind
from server.processing import costs, thumbnails, variants
from server.processing.audio_video import (
    PLAYABLE_AUDIO,
    probe_media,
    transcode_m4a,
    whole_seconds,
)
from server.processing.detect import identify
from server.processing.documents import (
    StreamCheck,
    needs_whole_file,
    stream_check,
    validate_document,
)
from server.processing.images import MUST_CONVERT, process_image
from server.processing.policy import ImagePlan, Options, Policy, image_plan, strips_av
from server.processing.remux import strip_container
from server.processing.spool import Spool
from server.processing.workers import Work, WorkerPool
from server.store.media import MediaRecord, MediaStore, StoredBytes, Upload
from server.store.sqlfiles import Q

log = logging.getLogger(__name__)

# Time one file may take in a worker: MEDIA_PROCESSING_TIMEOUT_SECONDS, plus a second
# per 10 MiB (a 2 GiB video demuxed end to end). Beyond it, 422 media_too_complex.
BYTES_PER_SECOND = 10 * 1024 * 1024
READ_BYTES = 256 * 1024


class Processing:
    """Holds the policy and the worker processes the CPU work runs in
    (MEDIA_PROCESS_CONCURRENCY of them, MEDIA_PROCESSING_MEMORY_BYTES between them).
    ``start_workers`` with the app (else the first job starts them), ``close`` or
    ``aclose`` after."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.workers = WorkerPool(policy.concurrency, policy.memory_bytes)
        # Thumbnails being made by this process, by (media id, variant name): every
        # request for one waits on the same task (ondemand.py).
        self.making: dict[tuple[int, str], asyncio.Future] = {}
        # ... and those that could not be made lately: (until when, the error).
        self.thumbnail_refusals: dict[tuple[int, str], tuple[float, Exception]] = {}

    async def start_workers(self) -> None:
        await self.workers.start()

    def close(self) -> None:
        self.workers.close()

    async def aclose(self) -> None:
        for task in list(self.making.values()):    # the store is closed by now
            await cancel_and_wait(task)
        await self.workers.aclose()

    async def run(self, fn, *args):
        """``fn(*args)`` in a worker: ``fn`` a Work with its limits, or a plain
        function, which gets MEDIA_PROCESSING_TIMEOUT_SECONDS and no reservation."""
        work = fn if isinstance(fn, Work) else Work(fn, self.policy.timeout_seconds)
        return await self.workers.run(work, args)

    def admit(self, head: bytes, *, complete: bool) -> MediaKind:
        """The detected type if the allow-list has it; 415 naming it otherwise."""
        found = identify(head, complete=complete)
        if found.media_type is None or found.mime_type not in self.policy.allowed:
            raise UnsupportedMediaType(f"files of type {found.mime_type} are not accepted")
        return found

    def limit(self, kind: MediaKind, overall: int) -> int:
        return min(overall, self.policy.max_bytes[kind.media_type])

    async def start(self, store: MediaStore, kind: MediaKind, client_name: str | None,
                    options: Options | None, reuse: StoredBytes | None = None) -> "Job":
        """A job for one file; ``reuse``: the file's bytes are stored already (a tus
        upload's), so if processing keeps them as they are they are not written again."""
        job = Job(self, store, kind, client_name, options or Options(), reuse)
        await job.open()
        return job


class Job:
    """One file on its way in: ``write`` the bytes, then ``finish`` or ``abort``.
    Presents the same surface as store.Upload, so callers treat both alike."""

    # As store.Upload.guard; handed to the upload that is finished (not to one
    # streamed and then replaced by its re-encoding, whose abort must not release it).
    guard = None

    def __init__(self, processing: Processing, store: MediaStore, kind: MediaKind,
                 client_name: str | None, options: Options,
                 reuse: StoredBytes | None = None):
        self.processing = processing
        self._reuse = reuse
        self.store = store
        self.kind = kind
        self.client_name = client_name
        self.options = options
        self.size = 0
        self._spool: Spool | None = None
        self._spool_path: str | None = None
        self._check: StreamCheck | None = None
        self._upload: Upload | None = None
        self._stored_mime = kind.mime_type    # a BMP may be stored as a PNG (_begin)
        self._process = processing.policy.enabled
        # Images that may be replaced by their re-encoding, and videos and audio that
        # lose their metadata, reach the store only once decided; everything else is
        # stored while it streams in (and, should a form field after the file ask for
        # compression after all, replaced at the end).
        self._direct = not self._process or not (
            may_rewrite(kind, image_plan(processing.policy, options))
            or strips_av(processing.policy, kind.mime_type))

    async def open(self) -> None:
        if self._process and (self.kind.media_type != "document"
                              or needs_whole_file(self.kind.mime_type)):
            self._spool = await Spool.create()
            self._spool_path = self._spool.path
        elif self._process:
            self._check = stream_check(self.kind.mime_type)
        if self._direct:
            self._upload = await self._begin(self.kind.mime_type, self.kind.extension,
                                             original=True)

    async def _begin(self, mime: str, ext: str, *, original: bool = False) -> Upload:
        file_name = f"{uuid.uuid4().hex}.{ext}"
        name = self.client_name or file_name
        if ext != self.kind.extension:   # HEIC stored as JPEG: say so in the name too
            name = f"{name.rsplit('.', 1)[0] if '.' in name else name}.{ext}"
        # The received bytes as they are: those stored already need no second copy.
        reuse, self._reuse = (self._reuse, None) if original else (None, self._reuse)
        self._stored_mime = mime
        return await self.store.begin_upload(
            file_name=file_name, original_name=name, mime_type=mime,
            media_type=self.kind.media_type, reuse=reuse)

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._spool is not None:
            await self._spool.write(data)
        elif self._check is not None:
            self._check.feed(data)
        if self._upload is not None:
            await self._upload.write(data)

    async def finish(self, message_id: int, audit=None, *, then=None) -> MediaRecord:
        """Process, store the outcome, make it visible (``audit`` and ``then`` as for
        Upload.finish); on failure nothing remains."""
        try:
            if self._spool is not None:
                await self._spool.close()
                await self._process_and_store()
            elif self._check is not None:
                self._check.finish()
            assert self._upload is not None
            self._upload.guard = self.guard
            return await self._upload.finish(message_id, audit=audit, then=then)
        except BaseException:
            await self.abort()
            raise
        finally:
            await self._remove_spool()

    async def abort(self) -> None:
        try:
            if self._upload is not None:
                await self._upload.abort()
            if self.guard is not None:
                await self.guard.release()
        finally:
            await self._remove_spool()

    async def _remove_spool(self) -> None:
        if self._spool is not None:
            spool, self._spool = self._spool, None
            await spool.remove()

    # -- the work -----------------------------------------------------------------

    def _seconds(self) -> float:
        return self.processing.policy.timeout_seconds + self.size / BYTES_PER_SECOND

    def _deadline(self) -> float:
        return time.monotonic() + self._seconds()

    async def _work(self, fn) -> Work:
        """``fn`` with this file's limits: its time, and the memory its header says
        decoding it takes (read in a worker too: a header is hostile input)."""
        memory = costs.fixed_cost(self.kind.media_type)
        if memory is None:
            memory = await self.processing.run(
                costs.estimate, self._spool_path, self.kind.media_type,
                self.kind.mime_type, self.size, self.processing.policy.max_pixels)
        return Work(fn, self._seconds(), memory)

    async def _process_and_store(self) -> None:
        facts: dict = dict(dimensions=None, duration=None, duration_exact=None,
                           is_compressed=False, compression_quality=None, waveform=None)
        found: list[variants.VariantSource] = []
        m4a_path = f"{self._spool_path}.m4a"
        try:
            if self.kind.media_type == "image":
                await self._image(facts, found)
            elif self.kind.media_type in ("video", "audio"):
                await self._audio_video(facts, found, m4a_path)
            else:
                await self.processing.run(await self._work(validate_document),
                                          self._spool_path, self.kind.mime_type)
            made = await self._thumbnails()
            if made is not None:
                found.extend(variants.VariantSource(name, r.mime_type, r.dimensions,
                                                    variants.from_bytes(r.data))
                             for name, r in made.thumbnails.items())
            assert self._upload is not None
            await self._upload.flush()
            async with self.store.connection() as conn:
                await Q.set_media_facts.execute(conn, id=self._upload.media_id, **facts)
                if made is not None and made.placeholder is not None:
                    await Q.set_media_placeholder.execute(
                        conn, id=self._upload.media_id, placeholder=made.placeholder)
            for v in found:
                await variants.store_variant(self.store, self._upload.media_id, v)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, m4a_path)

    async def _thumbnails(self) -> thumbnails.Made | None:
        """The eager thumbnails (MEDIA_THUMBNAIL_EAGER; every size for a video) and the
        placeholder of an image or video already accepted; None if they could not be
        made (they are then made on request, which answers 422 for what won't decode)."""
        if not thumbnails.has_thumbnails(self.kind.media_type):
            return None
        policy = self.processing.policy
        limits = thumbnails.Limits(policy.thumbnail_max_source_pixels,
                                   policy.thumbnail_max_animated_bytes)
        # A video's every size comes from one frame decoded here; made later, each would
        # first copy the whole video out of the database to decode that frame again.
        sizes = (policy.thumbnail_sizes if self.kind.media_type == "video"
                 else policy.thumbnail_eager)
        try:
            return await self.processing.run(
                await self._work(thumbnails.at_upload), self._spool_path,
                self.kind.mime_type, self.kind.media_type, sizes,
                thumbnails.animates(self._stored_mime, True), limits, self._deadline())
        except MediaError as e:
            log.info("no thumbnails at upload for a %s: %s", self.kind.mime_type, e)
            return None

    async def _image(self, facts: dict, found: list) -> None:
        kind, path = self.kind, self._spool_path
        res = await self.processing.run(await self._work(process_image), path,
                                        kind.mime_type, self.size,
                                        image_plan(self.processing.policy, self.options))
        stored = res.stored
        if stored is not None and self._upload is not None:
            await self._upload.abort()   # streamed, then rewritten after all
            self._upload = None
        if stored is not None:
            self._upload = await self._begin(stored.mime_type, stored.extension or kind.extension)
            await self._upload.write(stored.data)
        elif self._upload is None:
            self._upload = await self._begin(kind.mime_type, kind.extension, original=True)
            async for piece in variants.from_file(path):
                await self._upload.write(piece)
        facts.update(dimensions=res.dimensions, is_compressed=res.is_compressed,
                     compression_quality=res.quality)
        found.append(_preview(res.preview))

    async def _audio_video(self, facts: dict, found: list, m4a_path: str) -> None:
        kind, path, run = self.kind, self._spool_path, self.processing.run
        av_facts = await run(await self._work(probe_media), path, kind.media_type,
                             self._deadline(), self.processing.policy.max_pixels)
        exact = av_facts.duration
        facts.update(dimensions=av_facts.dimensions, duration_exact=exact,
                     duration=whole_seconds(exact) if exact is not None else None,
                     waveform=av_facts.waveform)
        if av_facts.preview is not None:
            found.append(_preview(av_facts.preview))
        if (kind.media_type == "audio" and av_facts.audio_codec is not None
                and av_facts.audio_codec not in PLAYABLE_AUDIO):
            await run(await self._work(transcode_m4a), path, m4a_path, self._deadline())
            found.append(variants.VariantSource("m4a", "audio/mp4", None,
                                                variants.from_file(m4a_path)))
        if self._upload is None:   # not streamed in: stored once stripped
            await self._store_stripped(path)

    async def _store_stripped(self, path: str) -> None:
        clean = f"{path}.clean"
        try:
            await self.processing.run(await self._work(strip_container), path, clean,
                                      self.kind.mime_type, self._deadline())
            self._upload = await self._begin(self.kind.mime_type, self.kind.extension)
            async for piece in variants.from_file(clean):
                await self._upload.write(piece)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, clean)


def may_rewrite(kind: MediaKind, plan: ImagePlan) -> bool:
    """Whether processing might store other bytes than those received, for an image
    (for video and audio: policy.strips_av)."""
    if plan.keep_bytes:
        return False
    return kind.media_type == "image" and (
        plan.compress or not plan.keep_metadata or kind.mime_type in MUST_CONVERT)


def _preview(r) -> variants.VariantSource:
    return variants.VariantSource("preview", r.mime_type, r.dimensions,
                                  variants.from_bytes(r.data))


__all__ = ["Processing", "Job"]


# The application's processing (its worker pool and policy).
PROCESSING = web.AppKey("processing", Processing)
