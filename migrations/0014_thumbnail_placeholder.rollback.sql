ALTER TABLE media_files DROP COLUMN placeholder;
