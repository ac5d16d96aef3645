"""The media record's columns are written out in several places: the statements in
sql/media.sql that return a record, MediaRecord, and the JSON shape. They must agree;
a column added to one and not the others fails here, not in production."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from server.api.media_json import media_json
from server.security.signing import UrlSigner
from server.store.media import MediaRecord
from server.store.sqlfiles import Q

FIELDS = [f.name for f in dataclasses.fields(MediaRecord)]
# Statements whose rows become a MediaRecord (store/media.py: MediaRecord.from_row).
RECORD_STATEMENTS = {"finalize_upload", "get_media", "get_media_by_file_name",
                     "list_message_media",
                     # paging (limits): the first page, and the pages after a cursor
                     "list_message_media_first", "list_message_media_after",
                     # sql/tus.sql: a resumable upload made visible, and read back
                     "tus_finalize", "tus_complete_record"}
# Storage details that stay out of the API.
NOT_IN_JSON = {"chunk_size", "chunk_count"}


async def test_record_statements_return_exactly_the_record_fields(pool):
    shapes = {}
    async with pool.acquire() as conn:
        for name in Q.names():
            attrs = (await conn.prepare(getattr(Q, name).sql)).get_attributes()
            names = [a.name for a in attrs]
            # A statement returning most of the record's columns is meant to build one
            # (monitoring queries return a few of them, for people).
            if len(set(names) & set(FIELDS)) > len(FIELDS) // 2:
                shapes[name] = [(a.name, a.type.name) for a in attrs]
    assert set(shapes) == RECORD_STATEMENTS
    for name, shape in shapes.items():
        assert [n for n, _ in shape] == FIELDS, name
    # ... and with the same types, so every record has the same Python types.
    assert len({tuple(shape) for shape in shapes.values()}) == 1, shapes


def test_json_shape_is_the_record_less_storage_details_plus_url():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    values = {f: None for f in FIELDS} | {"id": 7, "sha256": b"\x00" * 32,
                                          "created_at": now, "updated_at": now}
    body = media_json(MediaRecord(**values), UrlSigner([b"k" * 32], 3600, public=True))
    assert set(body) == (set(FIELDS) - NOT_IN_JSON) | {"url"}
    assert body["url"] == "/api/media/serve/7"
    signed = media_json(MediaRecord(**values), UrlSigner([b"k" * 32], 3600))["url"]
    assert signed.startswith("/api/media/serve/7?") and "sig=" in signed
