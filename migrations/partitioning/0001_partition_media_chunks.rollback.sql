-- Back to one chunk table, rows and all.
ALTER TABLE content_chunks RENAME TO content_chunks_partitioned;

CREATE TABLE content_chunks (
    content_id BIGINT NOT NULL REFERENCES media_contents (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    data     TEXT NOT NULL,
    PRIMARY KEY (content_id, seq)
);
ALTER TABLE content_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

INSERT INTO content_chunks (content_id, seq, data)
SELECT content_id, seq, data FROM content_chunks_partitioned;

DROP TABLE content_chunks_partitioned;
