"""The media record's columns are written out in several places: the statements in
sql/media.sql that return a record, MediaRecord, and the JSON shape. They must agree;
a column added to one and not the others fails here, not in production."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from server.api.media_json import media_json
from server.security.signing import UrlSigner
from server.legacy.columns import PLACEHOLDER
from server.store.media import MediaRecord
from server.store.sqlfiles import Q
from tests.database.test_sqlfiles import CITUS_ONLY

FIELDS = [f.name for f in dataclasses.fields(MediaRecord)]
# Statements whose rows become a MediaRecord (store/media.py: MediaRecord.from_row).
RECORD_STATEMENTS = {"finalize_upload", "get_media", "get_legacy_media_by_file_name",
                     "list_message_media_first",
                     "list_message_media_after", "get_variant",
                     "get_media_by_legacy_name", "search_media_by_message",
                     "search_media_by_mime", "search_media_by_type", "search_media_all",
                     # sql/tus.sql: the media a resumable upload became
                     "tus_complete_record"}
# Storage details that stay out of the API (``variant``: which variant a record serves).
NOT_IN_JSON = {"chunk_size", "chunk_count", "variant"}


async def test_record_statements_return_exactly_the_record_fields(pool):
    shapes = {}
    async with pool.acquire() as conn:
        for name in set(Q.names()) - CITUS_ONLY:   # those need a Citus coordinator
            st = getattr(Q, name)
            if PLACEHOLDER in st.sql:   # statements on the chat's URL column: not records
                continue
            attrs = (await conn.prepare(st.sql)).get_attributes()
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
                                          "created_at": now, "updated_at": now,
                                          "waveform": [0] * 64}   # only sent when known
    body = media_json(MediaRecord(**values), UrlSigner([b"k" * 32], 3600, public=True))
    assert set(body) == (set(FIELDS) - NOT_IN_JSON) | {"url"}
    assert body["url"] == "/api/media/serve/7"
    signed = media_json(MediaRecord(**values), UrlSigner([b"k" * 32], 3600))["url"]
    assert signed.startswith("/api/media/serve/7?") and "sig=" in signed
