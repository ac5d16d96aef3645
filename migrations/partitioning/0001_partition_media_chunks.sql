-- Optional, for databases that outgrow one chunk table (see docs/scaling.md): spread
-- content_chunks over 16 hash partitions of content_id. Every statement on chunks filters
-- on content_id, so each touches one partition; vacuum, TOAST and index maintenance
-- work per partition instead of on one huge table.
--
-- Applied by `python run.py partition-chunks`, never by `migrate`. It rewrites the
-- whole chunk table in one transaction: plan a maintenance window (it takes about as
-- long as copying the table), with the disk space for a second copy.
--
-- To use another count, change 16 below before applying (a power of two keeps a
-- later split simple).

ALTER TABLE content_chunks RENAME TO content_chunks_unpartitioned;
ALTER TABLE content_chunks_unpartitioned
    RENAME CONSTRAINT content_chunks_pkey TO content_chunks_unpartitioned_pkey;

CREATE TABLE content_chunks (
    content_id BIGINT NOT NULL REFERENCES media_contents (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (content_id, seq)
) PARTITION BY HASH (content_id);
ALTER TABLE content_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

DO $$
BEGIN
    FOR r IN 0..15 LOOP
        EXECUTE format('CREATE TABLE content_chunks_p%s PARTITION OF content_chunks '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)', r, r);
        EXECUTE format('ALTER TABLE content_chunks_p%s ALTER COLUMN data SET STORAGE EXTERNAL',
                       r);
    END LOOP;
END
$$;

INSERT INTO content_chunks (content_id, seq, data)
SELECT content_id, seq, data FROM content_chunks_unpartitioned;

DROP TABLE content_chunks_unpartitioned;
