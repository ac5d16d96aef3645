-- The tombstones go (purged ids then answer 404), and so do the batches' id lists.
DROP INDEX media_audit_log_media_ids_idx;
ALTER TABLE media_audit_log DROP COLUMN media_ids;
DROP TABLE purged_media;
