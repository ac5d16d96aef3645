"""Incremental base64 in fixed-size chunks, as bytes arrive.

Pure and synchronous: fed arbitrary pieces of a stream, it yields each chunk's base64
text as soon as the chunk is full, hashing everything on the way. Because a chunk holds
a multiple of 3 raw bytes, each chunk's base64 has no padding and stands alone, and the
chunks joined in order are exactly the base64 of the whole file.
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

import pybase64


class Chunk(NamedTuple):
    seq: int
    nbytes: int     # raw bytes it encodes
    text: str       # their base64


class Base64Carry:
    """Encodes a stream piecewise, carrying the 0-2 bytes that don't fill a 3-byte group."""

    __slots__ = ("_carry",)

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes | memoryview) -> bytes:
        if self._carry:
            data = self._carry + data
        cut = len(data) - len(data) % 3
        self._carry = bytes(data[cut:])
        return pybase64.b64encode(memoryview(data)[:cut])

    def finish(self) -> bytes:
        out, self._carry = pybase64.b64encode(self._carry), b""
        return out


class ChunkEncoder:
    """Cuts a byte stream into ``chunk_size``-byte chunks and returns their base64.

    ``feed`` returns the chunks completed by this piece (often none); ``finish`` returns
    the last, partial chunk (none for an empty stream or an exact multiple). Each chunk
    comes as ``Chunk(seq, nbytes, text)``. Memory held is at most one chunk's base64.
    """

    def __init__(self, chunk_size: int):
        if chunk_size <= 0 or chunk_size % 3:
            raise ValueError("chunk_size must be a positive multiple of 3")
        self.chunk_size = chunk_size
        self.total = 0
        self.chunks = 0
        self._sha = hashlib.sha256()
        self._b64 = Base64Carry()
        self._pieces: list[bytes] = []
        self._fill = 0

    def feed(self, data: bytes) -> list[Chunk]:
        done: list[Chunk] = []
        view = memoryview(data)
        self._sha.update(view)
        self.total += len(view)
        while view:
            take = min(len(view), self.chunk_size - self._fill)
            self._pieces.append(self._b64.feed(view[:take]))
            self._fill += take
            view = view[take:]
            if self._fill == self.chunk_size:
                # chunk_size is a multiple of 3, so the carry is empty here.
                done.append(self._take())
        return done

    def finish(self) -> list[Chunk]:
        if self._fill == 0:
            return []
        self._pieces.append(self._b64.finish())
        return [self._take()]

    def sha256(self) -> bytes:
        return self._sha.digest()

    def _take(self) -> Chunk:
        chunk = Chunk(self.chunks, self._fill, b"".join(self._pieces).decode("ascii"))
        self._pieces, self._fill = [], 0
        self.chunks += 1
        return chunk
