DROP TABLE unscanned_contents;
DROP TRIGGER quarantined_contents_notify ON quarantined_contents;
DROP FUNCTION quarantine_notify();
DROP INDEX media_files_sha256_idx;
DROP FUNCTION media_quarantine_reason(BYTEA);
DROP TABLE quarantined_contents;
