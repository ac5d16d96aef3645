DROP INDEX media_files_search_mime_idx;
DROP INDEX media_files_search_type_idx;
DROP INDEX media_files_search_idx;
DROP TABLE legacy_media;
