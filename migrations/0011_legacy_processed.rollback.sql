-- Processed imports lose the record of their stored hash; the map's sha256 and
-- file_size (the legacy file's) stay, so a re-run still recognises every file. (An
-- older verify would then report a processed import's copy as differing from its file,
-- which it does, on purpose.)
ALTER TABLE legacy_media DROP CONSTRAINT legacy_media_kept_bytes;
ALTER TABLE legacy_media DROP CONSTRAINT legacy_media_stored_sha256_len;
ALTER TABLE legacy_media DROP COLUMN stored_sha256;
ALTER TABLE legacy_media DROP COLUMN processed;
