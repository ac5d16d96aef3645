-- Undo 0009_tus: the tus bookkeeping goes; uploads still in progress go with it.
DELETE FROM media_files WHERE id IN (SELECT media_id FROM tus_uploads)
   AND upload_state = 'uploading';
DROP TABLE tus_uploads;
