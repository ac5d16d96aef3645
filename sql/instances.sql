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
-- The live instances are read first and the candidates chosen without row locks: on
-- Citus media_files is spread over the workers, where neither a join with the
-- coordinator's media_instances nor FOR UPDATE across shards runs. The conditions are
-- checked again on each row deleted: an upload written to meanwhile (a row lock
-- waited for, then its new updated_at) is left alone.
WITH live AS (
    SELECT coalesce(array_agg(i.id), '{}') AS ids
      FROM media_instances i
     WHERE i.last_seen > now() - make_interval(secs => :dead_seconds)
)
DELETE FROM media_files f
 WHERE f.id IN (SELECT g.id
                  FROM media_files g
                 WHERE g.upload_state = 'uploading'
                   AND g.instance_id IS NOT NULL
                   AND g.updated_at < now() - make_interval(secs => :dead_seconds)
                   AND g.instance_id <> ALL ((SELECT ids FROM live)::uuid[])
                 LIMIT :batch)
   AND f.upload_state = 'uploading'
   AND f.updated_at < now() - make_interval(secs => :dead_seconds)
RETURNING f.id;

-- name: prune_instances
-- Rows of instances dead for a long while: nothing refers to them any more.
DELETE FROM media_instances
 WHERE last_seen < now() - make_interval(secs => :older_than_seconds);
