-- Thumbnails (server/processing/ondemand.py): stored as variants of their media
-- (processing.sql's statements), made once across every instance, and the media's
-- placeholder.

-- name: thumbnail_try_lock
-- The one maker of a thumbnail, across instances: held by its session while it renders
-- and stores it (and gone with the session if the instance dies); others wait for it.
SELECT pg_try_advisory_lock(:media_id, hashtext('media-store: thumbnail ' || :name));

-- name: thumbnail_unlock
SELECT pg_advisory_unlock(:media_id, hashtext('media-store: thumbnail ' || :name));

-- name: set_media_placeholder
-- The BlurHash a client draws while the bytes arrive; written while uploading, as the
-- facts are (processing.sql).
UPDATE media_files
   SET placeholder = :placeholder
 WHERE id = :id AND upload_state = 'uploading';
