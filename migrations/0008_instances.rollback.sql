DROP TRIGGER media_files_notify_deleted ON media_files;
DROP FUNCTION media_notify_deleted();
ALTER TABLE media_files DROP COLUMN instance_id;
DROP TABLE media_instances;
