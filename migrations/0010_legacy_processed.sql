-- import-legacy --process stores other bytes than the legacy file's, on purpose: the
-- map then needs both hashes, so that verify and cleanup-legacy can tell a file
-- processed on purpose from one damaged since. legacy_media.sha256 and file_size stay
-- the legacy file's own (what the folder holds, what a re-run compares against).
-- depends: 0007_legacy

ALTER TABLE legacy_media
    -- True when imported with --process: the stored bytes may differ from the file's.
    ADD COLUMN processed BOOLEAN NOT NULL DEFAULT false,
    -- The sha256 of what was stored, as recorded at import (media_files.sha256 then).
    ADD COLUMN stored_sha256 BYTEA CHECK (octet_length(stored_sha256) = 32);

-- Every import before this migration kept the file's bytes: stored = legacy.
UPDATE legacy_media SET stored_sha256 = sha256;
ALTER TABLE legacy_media ALTER COLUMN stored_sha256 SET NOT NULL;
-- Without --process the bytes are the file's own: the two hashes are equal.
ALTER TABLE legacy_media ADD CONSTRAINT legacy_media_kept_bytes
    CHECK (processed OR stored_sha256 = sha256);
