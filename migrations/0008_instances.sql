-- Scale-out: instances announce themselves, uploads record which instance receives
-- them, and deletions of complete media are announced to every instance's cache.
-- depends: 0002_media_files

-- Each running server beats here every MEDIA_HEARTBEAT_SECONDS. An instance that
-- stopped beating is dead: any other reclaims its half-received uploads at once
-- instead of waiting MEDIA_UPLOAD_STALE_SECONDS.
CREATE TABLE media_instances (
    id         UUID PRIMARY KEY,
    hostname   VARCHAR(255) NOT NULL,
    pid        INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The instance streaming an upload in; NULL for uploads no instance owns (resumable
-- uploads wait for their client, not for an instance). No foreign key: instance rows
-- are pruned, and a missing row means a dead instance.
ALTER TABLE media_files ADD COLUMN instance_id UUID;

-- Metadata of complete media is immutable and cached by every instance; a delete is
-- the one change they must hear about. NOTIFY is delivered at commit, so a rolled back
-- delete announces nothing. The channel name is also in server/store/invalidation.py.
CREATE FUNCTION media_notify_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('media_deleted', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER media_files_notify_deleted
    AFTER DELETE ON media_files
    FOR EACH ROW WHEN (OLD.upload_state = 'complete')
    EXECUTE FUNCTION media_notify_deleted();
