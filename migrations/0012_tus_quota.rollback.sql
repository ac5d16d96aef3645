DROP INDEX tus_uploads_creator_idx;
ALTER TABLE tus_uploads DROP COLUMN reserved;
