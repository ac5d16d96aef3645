-- Optional, for databases that outgrow one chunk table (see docs/scaling.md): spread
-- media_chunks over 16 hash partitions of media_id. Every statement on chunks filters
-- on media_id, so each touches one partition; vacuum, TOAST and index maintenance
-- work per partition instead of on one huge table.
--
-- Applied by `python run.py partition-chunks`, never by `migrate`. It rewrites the
-- whole chunk table in one transaction: plan a maintenance window (it takes about as
-- long as copying the table), with the disk space for a second copy.
--
-- To use another count, change 16 below before applying (a power of two keeps a
-- later split simple).

ALTER TABLE media_chunks RENAME TO media_chunks_unpartitioned;
ALTER TABLE media_chunks_unpartitioned
    RENAME CONSTRAINT media_chunks_pkey TO media_chunks_unpartitioned_pkey;

CREATE TABLE media_chunks (
    media_id INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (media_id, seq)
) PARTITION BY HASH (media_id);
ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

DO $$
BEGIN
    FOR r IN 0..15 LOOP
        EXECUTE format('CREATE TABLE media_chunks_p%s PARTITION OF media_chunks '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)', r, r);
        EXECUTE format('ALTER TABLE media_chunks_p%s ALTER COLUMN data SET STORAGE EXTERNAL',
                       r);
    END LOOP;
END
$$;

INSERT INTO media_chunks (media_id, seq, data)
SELECT media_id, seq, data FROM media_chunks_unpartitioned;

DROP TABLE media_chunks_unpartitioned;
