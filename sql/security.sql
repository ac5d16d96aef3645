-- Access control: API keys, the generated signing key, the audit log.

-- name: create_api_key
-- A new key: only the SHA-256 of the key is kept. Fails on a duplicate active name.
-- Its limits (NULL: none) and its usage row (sql/quotas.sql) come with it.
WITH k AS (
    INSERT INTO api_keys (name, scope, key_hash, quota_bytes, quota_files,
                          uploads_per_minute)
    VALUES (:name, :scope, :key_hash, :quota_bytes, :quota_files, :uploads_per_minute)
    RETURNING id, name, scope, created_at
), usage AS (
    INSERT INTO key_usage (key_id) SELECT id FROM k
)
SELECT id, name, scope, created_at FROM k;

-- name: find_api_key
-- The key behind a presented secret (its hash), revoked or not: a revoked key is
-- refused and its use recorded under its name.
SELECT id, name, scope, key_hash, revoked_at IS NOT NULL AS revoked,
       last_used_at IS NULL OR last_used_at < now() - interval '60 seconds' AS touch_due
  FROM api_keys
 WHERE key_hash = :key_hash;

-- name: touch_api_key
-- "last used" for `keys list`, written at most once a minute per key, not per request.
UPDATE api_keys SET last_used_at = now() WHERE id = :id;

-- name: list_api_keys
-- `keys list`: never the key, only what it is, what it uses and may use.
SELECT k.name, k.scope, k.created_at, k.last_used_at, k.revoked_at,
       coalesce(u.bytes, 0) AS bytes, coalesce(u.files, 0) AS files,
       k.quota_bytes, k.quota_files, k.uploads_per_minute
  FROM api_keys k LEFT JOIN key_usage u ON u.key_id = k.id
 ORDER BY k.revoked_at IS NOT NULL, k.name, k.created_at;

-- name: revoke_api_key
-- Stops the key at once on every instance: keys are looked up on every request.
UPDATE api_keys SET revoked_at = now()
 WHERE name = :name AND revoked_at IS NULL
RETURNING id;

-- name: ensure_service_secret
-- Keeps :secret under :name unless another instance got there first; either way
-- returns the secret every instance now shares. DO UPDATE rather than DO NOTHING: when
-- two instances start at once, the loser waits for the winner's insert and must then
-- see its row, which a SELECT in the same statement cannot (its snapshot predates the
-- winner's commit); DO UPDATE locks and returns the committed row. The update changes
-- nothing.
INSERT INTO service_secrets (name, secret) VALUES (:name, :secret)
ON CONFLICT (name) DO UPDATE SET secret = service_secrets.secret
RETURNING secret;

-- name: insert_audit
-- One audit row; run on the same connection and in the same transaction as the change
-- it records, so a change rolled back never leaves a success row.
INSERT INTO media_audit_log (actor, action, media_id, message_id, client_addr,
                             user_agent, request_id, outcome)
VALUES (:actor, :action, :media_id, :message_id, :client_addr::inet, :user_agent,
        :request_id, :outcome);

-- name: count_refusal
-- :n refusals without a valid credential in the :minute starting then: one row per
-- (minute, address, actor, outcome), its count raised by every later write of the
-- same key, from any instance (the partial unique index media_audit_log_refusal_idx,
-- migration 0013). The row keeps the first refusal's user agent and request id.
INSERT INTO media_audit_log (actor, action, media_id, message_id, client_addr,
                             user_agent, request_id, outcome, minute, count)
VALUES (:actor, :action, NULL, NULL, :client_addr::inet, :user_agent, :request_id,
        :outcome, :minute, :n)
ON CONFLICT (minute, (coalesce(host(client_addr), '')), actor, outcome)
   WHERE minute IS NOT NULL
DO UPDATE SET count = media_audit_log.count + EXCLUDED.count;

-- name: prune_audit
-- MEDIA_AUDIT_RETENTION_DAYS: one batch of the oldest rows past it (media_audit_log_at_idx),
-- in its own short statement; the janitor repeats it while batches come back full.
WITH gone AS (
    DELETE FROM media_audit_log
     WHERE id IN (SELECT id FROM media_audit_log
                   WHERE at < now() - make_interval(days => :days)
                   ORDER BY at
                   LIMIT :batch
                     FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: search_audit
-- GET /api/audit: newest first, each filter optional (NULL = any). count: how many
-- refusals a counted row stands for (1 for every other row); media_ids: a purged
-- batch's ids (NULL otherwise), among which :media_id is looked for too. A page goes
-- on strictly after the previous page's last (at, id) when :after_at is given.
SELECT id, at, actor, action, media_id, message_id, host(client_addr) AS client_addr,
       user_agent, request_id, outcome, count, media_ids
  FROM media_audit_log
 WHERE (:media_id::integer IS NULL OR media_id = :media_id::integer
        OR media_ids @> ARRAY[:media_id::integer])
   AND (:action::text IS NULL OR action = :action::text)
   AND (:actor::text IS NULL OR actor = :actor::text)
   AND (:since::timestamptz IS NULL OR at >= :since::timestamptz)
   AND (:after_at::timestamptz IS NULL
        OR (at, id) < (:after_at::timestamptz, :after_id::bigint))
 ORDER BY at DESC, id DESC
 LIMIT :limit;
