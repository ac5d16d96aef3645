-- Media processing: the exact duration and a voice note's waveform beside the original
-- columns, and variants (previews, playable audio) stored in chunks like the media.
-- depends: 0002_media_files

-- The original duration column holds whole seconds; the exact value is kept here.
ALTER TABLE media_files ADD COLUMN duration_exact DOUBLE PRECISION
    CHECK (duration_exact >= 0);
-- A voice note's loudness in 64 buckets, 0-100, as chat apps draw it.
ALTER TABLE media_files ADD COLUMN waveform SMALLINT[]
    CHECK (cardinality(waveform) <= 256);

-- Derived files of one media: 'preview' (a small image), 'm4a' (AAC audio every player
-- can play). Written while the media is still uploading, so they appear with it; they
-- go with the media (and so with its message) by cascade.
CREATE TABLE media_variants (
    media_id    INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    name        VARCHAR(32) NOT NULL CHECK (name ~ '^[a-z0-9_]+$'),
    mime_type   VARCHAR(255) NOT NULL,
    file_size   BIGINT NOT NULL CHECK (file_size >= 0),
    dimensions  JSONB,
    sha256      BYTEA NOT NULL CHECK (octet_length(sha256) = 32),
    chunk_size  INTEGER NOT NULL CHECK (chunk_size > 0 AND chunk_size % 3 = 0),
    chunk_count INTEGER NOT NULL CHECK (chunk_count >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, name),
    CONSTRAINT media_variants_whole CHECK (
        chunk_count = (file_size + chunk_size - 1) / chunk_size)
);

-- A variant's bytes, exactly as media_chunks holds a media's: base64 text, fixed-size
-- chunks. Keyed to the media (not the variant row) so chunks can be written before the
-- variant's row says how many there are; the media's deletion takes both.
CREATE TABLE media_variant_chunks (
    media_id INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    name     VARCHAR(32) NOT NULL,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (media_id, name, seq)
);
ALTER TABLE media_variant_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- One media's variants as {"name": {"mime_type", "file_size", "dimensions"}}, for the
-- metadata routes ('{}' when there are none).
CREATE FUNCTION media_variant_list(p_media_id INTEGER) RETURNS JSONB
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(v.name, jsonb_build_object(
               'mime_type', v.mime_type, 'file_size', v.file_size,
               'dimensions', v.dimensions)), '{}'::jsonb)
      FROM media_variants v
     WHERE v.media_id = p_media_id
$$;
