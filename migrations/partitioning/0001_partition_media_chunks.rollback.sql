-- Back to one chunk table, rows and all.
ALTER TABLE media_chunks RENAME TO media_chunks_partitioned;

CREATE TABLE media_chunks (
    media_id INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (media_id, seq)
);
ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

INSERT INTO media_chunks (media_id, seq, data)
SELECT media_id, seq, data FROM media_chunks_partitioned;

DROP TABLE media_chunks_partitioned;
