DROP VIEW media_files_complete;
DROP FUNCTION media_file_data(INTEGER);
DROP TABLE media_chunks;
DROP TABLE media_files;
