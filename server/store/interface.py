"""The store's interface: what every other package may ask of the bytes.

These Protocols are the whole of it; server/store/media.py (MediaStore, Upload) is the
PostgreSQL implementation, and tests/contract/ runs the same cases against every
implementation. The contract, which every implementation must keep:

Contents. The bytes of one content (one sha256) are stored once, whatever the number
of media and variants that show them. A media record names its content
(``content_id``); two complete media with the same sha256 name the same content. A
record's ``sha256``, ``file_size``, ``chunk_size`` and ``chunk_count`` are those of its
content.

Writing. ``begin_upload`` returns an invisible upload. ``write`` takes the bytes in
pieces of any size and stores them as they come: memory stays bounded whatever the
file's size, and no connection is held between two calls. ``flush`` waits until every
full chunk written so far is stored. ``finish`` makes the media visible, atomically:
it is complete or it is not there. If its bytes are stored already (the same sha256),
the media points at that content and the copy just written is dropped, in the same
transaction; two identical uploads finishing at once end with one stored content and
two complete media. ``abort`` removes everything the upload wrote; it is safe to call
twice and from a cancelled task. An upload left without either (a crashed process) is
removed by ``reclaim_stale_uploads`` once idle long enough, with what it wrote.
``begin_upload(reuse=...)`` starts an upload whose bytes are stored already (a
completed tus upload's): they are written to it again only to be hashed and counted,
and must be exactly those bytes, or ``finish`` refuses.

Reading. ``stat`` returns a complete media's record or raises MediaNotFound; an upload
in progress is never returned. ``read(rec, start, end)`` yields exactly the bytes
``start..end`` (inclusive) of the record's content, touching only the chunks that cover
them; a content found incomplete raises StorageCorrupt, never yields wrong bytes.

Deleting. ``delete`` removes a complete media (MediaNotFound if there is none); it
never removes content that another media or variant shows. A deleted media's bytes are
no longer served (``read`` through a record of it raises StorageCorrupt, even if that
record was cached). Content that no row shows any more is kept for the grace period,
then ``reclaim_orphaned_contents`` (the janitor) deletes it. A finish that points at a content while it is being reclaimed
either keeps it (the reclaim leaves it) or, finding it gone, keeps its own copy: no
complete media ever points at missing bytes.

Checking. ``broken_invariants`` lists what is wrong with the stored contents and the
rows pointing at them (nothing on a healthy store); ``storage_figures`` gives the
logical bytes (every media's size), the stored bytes (each content once) and the
number of contents.
"""
from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ContentUpload(Protocol):
    """One upload in progress, owned by one request (not for concurrent use)."""

    media_id: int
    content_id: int | None

    @property
    def size(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def flush(self) -> None: ...

    async def finish(self, message_id: int, audit: Any = None, *, then: Any = None) -> Any: ...

    async def abort(self) -> None: ...


@runtime_checkable
class ByteWriter(Protocol):
    """Storing bytes: uploads, variants, and clean-up of what nobody shows."""

    chunk_size: int

    async def begin_upload(self, *, file_name: str, original_name: str, mime_type: str,
                           media_type: str, reuse: Any = None) -> ContentUpload: ...

    async def store_variant(self, media_id: int, *, name: str, mime_type: str,
                            dimensions: Any, pieces: AsyncIterator[bytes]) -> None: ...

    async def delete(self, media_id: int, audit: Any = None) -> None: ...

    async def reclaim_stale_uploads(self, stale_seconds: float, batch: int = 100) -> int: ...

    async def reclaim_orphaned_contents(self, grace_seconds: float,
                                        batch: int = 100) -> tuple[int, int]: ...


@runtime_checkable
class ByteReader(Protocol):
    """Reading stored bytes: by media record, or by content for whole-file readers."""

    async def stat(self, media_id: int) -> Any: ...

    def read(self, rec: Any, start: int, end: int) -> AsyncGenerator[bytes, None]: ...

    async def content_chunks(self, content_id: int, first: int, last: int
                             ) -> list[tuple[int, str]]: ...

    async def content_extent(self, content_id: int) -> tuple[int, int]: ...


@runtime_checkable
class ByteChecks(Protocol):
    """What a DBA and `verify`/`stats` ask of the storage model."""

    async def broken_invariants(self) -> list[str]: ...

    async def storage_figures(self) -> tuple[dict, int]: ...


@runtime_checkable
class ByteStore(ByteWriter, ByteReader, ByteChecks, Protocol):
    """The one door to the bytes: every implementation keeps the module's contract."""
