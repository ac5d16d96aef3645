-- Back to chunks owned by each media row (and variant): every copy written out again.
CREATE TABLE media_chunks (
    media_id INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (media_id, seq)
);
ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE media_variant_chunks (
    media_id INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    name     VARCHAR(32) NOT NULL,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (media_id, name, seq)
);
ALTER TABLE media_variant_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

INSERT INTO media_chunks (media_id, seq, data)
SELECT f.id, k.seq, k.data
  FROM media_files f
  JOIN content_chunks k ON k.content_id = f.content_id;

INSERT INTO media_variant_chunks (media_id, name, seq, data)
SELECT v.media_id, v.name, k.seq, k.data
  FROM media_variants v
  JOIN content_chunks k ON k.content_id = v.content_id;

CREATE OR REPLACE FUNCTION media_file_data(p_media_id INTEGER) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT string_agg(c.data, '' ORDER BY c.seq)
                       FROM media_chunks c
                      WHERE c.media_id = f.id), '')
      FROM media_files f
     WHERE f.id = p_media_id AND f.upload_state = 'complete'
$$;

ALTER TABLE media_files DROP COLUMN content_id;
ALTER TABLE media_variants DROP COLUMN content_id;
DROP TABLE content_chunks;
DROP TABLE media_contents;
