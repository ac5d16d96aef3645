-- The audit log, for DBAs in psql (read-only). Each query also has a name so the test
-- suite prepares it against the schema. In psql the parameters are psql variables:
--   \set days 7
--   \set media_id 42

-- name: audit_actions_per_key_per_day
-- What each key (or token, or signed URL) did per day over the last :days days.
SELECT date_trunc('day', at) AS day, actor, action, outcome, sum(count) AS actions
  FROM media_audit_log
 WHERE at >= now() - make_interval(days => :days)
 GROUP BY 1, 2, 3, 4
 ORDER BY 1 DESC, 2, 3, 4;

-- name: audit_denied_access
-- Refused requests over the last :days days, by actor and address: probing, a revoked
-- key still in use, links handed around after they expired.
-- (Refusals without a valid credential are counted rows: sum their count.)
SELECT actor, host(client_addr) AS client_addr, outcome, sum(count) AS attempts,
       min(at) AS first_seen, max(at) AS last_seen
  FROM media_audit_log
 WHERE action = 'access_denied' AND at >= now() - make_interval(days => :days)
 GROUP BY 1, 2, 3
 ORDER BY attempts DESC;

-- name: audit_last_actions_on_media
-- The latest 50 things that happened to one file.
SELECT at, actor, action, message_id, host(client_addr) AS client_addr, request_id,
       outcome
  FROM media_audit_log
 WHERE media_id = :media_id
 ORDER BY at DESC, id DESC
 LIMIT 50;
