DROP TRIGGER media_usage_returned ON media_files;
DROP FUNCTION media_usage_returned();
DROP TABLE key_upload_minutes;
DROP TABLE quota_reservations;
DROP TABLE key_usage;
ALTER TABLE media_files DROP COLUMN key_id;
ALTER TABLE api_keys DROP COLUMN uploads_per_minute;
ALTER TABLE api_keys DROP COLUMN quota_files;
ALTER TABLE api_keys DROP COLUMN quota_bytes;
