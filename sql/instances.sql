-- Statements on media_instances: the running servers and what a dead one left behind.

-- name: instance_beat
-- An instance says it is alive (the first beat registers it).
INSERT INTO media_instances (id, hostname, pid)
VALUES (:id, :hostname, :pid)
ON CONFLICT (id) DO UPDATE SET last_seen = now();

-- name: instance_gone
-- A clean stop: the instance's row goes with it.
DELETE FROM media_instances WHERE id = :id;

-- name: reclaim_dead_instance_uploads
-- Uploads owned by an instance that has not beaten for :dead_seconds (killed, or its
-- host gone). Also untouched for :dead_seconds, so an instance whose beats are merely
-- late never loses an upload it is still writing. Bounded per call, like the janitor.
DELETE FROM media_files
 WHERE id IN (SELECT f.id
                FROM media_files f
               WHERE f.upload_state = 'uploading'
                 AND f.instance_id IS NOT NULL
                 AND f.updated_at < now() - make_interval(secs => :dead_seconds)
                 AND NOT EXISTS (
                     SELECT 1 FROM media_instances i
                      WHERE i.id = f.instance_id
                        AND i.last_seen > now() - make_interval(secs => :dead_seconds))
               LIMIT :batch
                 FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: prune_instances
-- Rows of instances dead for a long while: nothing refers to them any more.
DELETE FROM media_instances
 WHERE last_seen < now() - make_interval(secs => :older_than_seconds);
