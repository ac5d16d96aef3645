-- import-legacy --process stores other bytes than the legacy file's, on purpose: the
-- map then needs both hashes, so that verify and cleanup-legacy can tell a file
-- processed on purpose from one damaged since. legacy_media.sha256 and file_size stay
-- the legacy file's own (what the folder holds, what a re-run compares against).
--
-- Metadata only, instant on a map of millions of rows while redirects read it: two
-- columns without a table rewrite, and constraints NOT VALID (checked for every row
-- written from now on; the rows already there satisfy them by construction).
-- depends: 0007_legacy 0010_tus_creator

ALTER TABLE legacy_media
    -- True when imported with --process: the stored bytes may differ from the file's.
    ADD COLUMN processed BOOLEAN NOT NULL DEFAULT false,
    -- The sha256 of what was stored, as recorded at import. NULL only on rows recorded
    -- before this column existed, which all kept the file's bytes: read it as sha256
    -- (coalesce in sql/legacy.sql).
    ADD COLUMN stored_sha256 BYTEA;

ALTER TABLE legacy_media ADD CONSTRAINT legacy_media_stored_sha256_len
    CHECK (octet_length(stored_sha256) = 32) NOT VALID;
-- Without --process the bytes are the file's own: the two hashes are equal; with it,
-- the stored one is recorded.
ALTER TABLE legacy_media ADD CONSTRAINT legacy_media_kept_bytes
    CHECK (CASE WHEN processed THEN stored_sha256 IS NOT NULL
                ELSE stored_sha256 IS NULL OR stored_sha256 = sha256 END) NOT VALID;
