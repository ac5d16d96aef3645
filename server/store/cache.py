"""A bytes-bounded LRU of decoded chunks, for the serving path.

What a chat serves again and again is small: photos and voice notes of one chunk, the
first and last chunks of a video that players probe, the chunk under a seek. Those
reads go through this cache; long sequential reads (a whole video) pass it by, so one
download cannot flush everything else out.

Complete media never changes, so a cached chunk can only go wrong by outliving a
delete; the store drops a file's chunks on every delete it hears of (invalidation.py)
and empties the cache whenever it cannot hear them.
"""
from __future__ import annotations

import collections

Key = tuple[int, int]   # (media_id, seq)


class ChunkCache:
    """Decoded chunks, at most ``max_total`` bytes in all."""

    def __init__(self, max_total: int):
        self.max_total = max_total
        self.total = 0
        self._items: collections.OrderedDict[Key, bytes] = collections.OrderedDict()
        self._by_media: dict[int, set[int]] = {}

    def get(self, key: Key) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key: Key, data: bytes) -> None:
        if not 0 < len(data) <= self.max_total:
            return
        self._pop(key)
        self._items[key] = data
        self._by_media.setdefault(key[0], set()).add(key[1])
        self.total += len(data)
        while self.total > self.max_total:
            self._pop(next(iter(self._items)))

    def drop_media(self, media_id: int) -> None:
        for seq in list(self._by_media.get(media_id, ())):
            self._pop((media_id, seq))

    def clear(self) -> None:
        self._items.clear()
        self._by_media.clear()
        self.total = 0

    def __len__(self) -> int:
        return len(self._items)

    def _pop(self, key: Key) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        self.total -= len(old)
        seqs = self._by_media[key[0]]
        seqs.discard(key[1])
        if not seqs:
            del self._by_media[key[0]]
