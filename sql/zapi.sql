-- Z-API deliveries: the outbox (zapi_deliveries) and what the webhooks change in it.
-- Life of a row: queued -> (claimed) sending -> sent | failed | unknown, or back to
-- queued with a later next_attempt_at for a retry. See server/zapi/outbox.py.
--
-- media_files.zapi_sent means: at least one delivery of the media is 'sent' (Z-API
-- took it and WhatsApp has not reported it failed; delivered and read are statuses of
-- a sent delivery). zapi_message_id is the message id of the latest such delivery,
-- NULL when there is none. delivery_sent sets both; a DeliveryCallback error that
-- fails a delivery recomputes them (media_zapi_sent_sync).

-- name: create_delivery
-- A send asked for: committed before any request to Z-API. Only complete media.
INSERT INTO zapi_deliveries (media_id, phone, caption, reply_to)
SELECT f.id, :phone, :caption, :reply_to
  FROM media_files f
 WHERE f.id = :media_id AND f.upload_state = 'complete'
RETURNING id, media_id, phone, caption, reply_to, state, attempts, next_attempt_at,
          last_error, last_http_status, zaap_id, zapi_message_id, sent_at,
          whatsapp_status, whatsapp_status_at, created_at, updated_at;

-- name: get_delivery
-- One delivery, as GET /api/deliveries/{id} shows it.
SELECT id, media_id, phone, caption, reply_to, state, attempts, next_attempt_at,
       last_error, last_http_status, zaap_id, zapi_message_id, sent_at,
       whatsapp_status, whatsapp_status_at, created_at, updated_at
  FROM zapi_deliveries
 WHERE id = :id;

-- name: list_media_deliveries
-- A media's deliveries, oldest first (zapi_deliveries_media_idx).
SELECT id, media_id, phone, caption, reply_to, state, attempts, next_attempt_at,
       last_error, last_http_status, zaap_id, zapi_message_id, sent_at,
       whatsapp_status, whatsapp_status_at, created_at, updated_at
  FROM zapi_deliveries
 WHERE media_id = :media_id
 ORDER BY id;

-- name: outbox_claim_lock
-- Serialises claims across server instances for the rest of the transaction, so the
-- count of claims in flight below cannot be raced past ZAPI_MAX_CONCURRENCY.
SELECT pg_advisory_xact_lock(hashtext('media-store: zapi outbox'));

-- name: claim_deliveries
-- Claims due rows, up to :max_in_flight claims alive at once across every instance:
-- each gets a new claim token and a lease, and counts an attempt. The request is made
-- after this transaction commits, never inside it.
WITH busy AS (
    SELECT count(*) AS n FROM zapi_deliveries
     WHERE state = 'sending' AND lease_until > now()
), due AS (
    SELECT id FROM zapi_deliveries
     WHERE state = 'queued' AND next_attempt_at <= now()
     ORDER BY next_attempt_at, id
     LIMIT greatest(0, :max_in_flight - (SELECT n FROM busy))
       FOR UPDATE SKIP LOCKED
)
UPDATE zapi_deliveries d
   SET state = 'sending', attempts = d.attempts + 1, claim_token = gen_random_uuid(),
       claimed_by = :instance_id,
       lease_until = now() + make_interval(secs => :lease_seconds), posted_at = NULL,
       updated_at = now()
  FROM due
 WHERE d.id = due.id
RETURNING d.id, d.media_id, d.phone, d.caption, d.reply_to, d.attempts, d.claim_token;

-- name: recover_expired_claims
-- Claims whose lease ran out, or whose instance stopped beating in media_instances
-- for :dead_seconds (and that are that old, so an instance that claimed before its
-- first beat is not taken for dead), belong to an instance that died or stalled.
-- Never posted: queued again, nothing was sent. Posted: the request may have reached
-- Z-API, so 'unknown', or queued again when :retry_unknown.
UPDATE zapi_deliveries
   SET state = CASE WHEN posted_at IS NULL OR :retry_unknown THEN 'queued'
                    ELSE 'unknown' END,
       last_error = CASE WHEN posted_at IS NULL
                         THEN 'claim expired before the request was made; queued again'
                         ELSE 'claim expired after the request was made: the outcome is '
                              'unknown' END,
       claimed_by = NULL,
       lease_until = NULL,
       updated_at = now()
 WHERE id IN (SELECT id FROM zapi_deliveries
               WHERE state = 'sending'
                 AND (lease_until < now()
                      OR (claimed_by IS NOT NULL
                          AND updated_at < now() - make_interval(secs => :dead_seconds)
                          AND NOT EXISTS (
                              SELECT 1 FROM media_instances i
                               WHERE i.id = claimed_by
                                 AND i.last_seen > now()
                                                   - make_interval(secs => :dead_seconds))))
                 FOR UPDATE SKIP LOCKED)
RETURNING id, state;

-- name: mark_posted
-- Recorded just before the request is written; no row back means the claim was lost
-- (recovered after its lease) and the request must not be made.
UPDATE zapi_deliveries
   SET posted_at = now(), updated_at = now()
 WHERE id = :id AND claim_token = :claim_token AND state = 'sending'
RETURNING id;

-- name: delivery_sent
-- Z-API took the message: the delivery keeps both ids, the media is marked sent.
-- Also accepted on a row a recovery made 'unknown' meanwhile: this is the truth.
WITH d AS (
    UPDATE zapi_deliveries
       SET state = 'sent', zaap_id = :zaap_id, zapi_message_id = :zapi_message_id,
           sent_at = now(), last_http_status = :http_status, last_error = NULL,
           lease_until = NULL, updated_at = now()
     WHERE id = :id AND claim_token = :claim_token AND state IN ('sending', 'unknown')
    RETURNING media_id
)
UPDATE media_files f
   SET zapi_sent = true, zapi_message_id = :zapi_message_id, updated_at = now()
  FROM d
 WHERE f.id = d.media_id
RETURNING f.id;

-- name: delivery_retry
-- A failure worth another try: queued again after :delay_seconds. :refund_attempt
-- (a 429: Z-API asked us to slow down, the send itself did not fail) gives the
-- attempt back.
UPDATE zapi_deliveries
   SET state = 'queued',
       next_attempt_at = now() + make_interval(secs => :delay_seconds),
       attempts = attempts - CASE WHEN :refund_attempt THEN 1 ELSE 0 END,
       last_error = :error, last_http_status = :http_status, lease_until = NULL,
       updated_at = now()
 WHERE id = :id AND claim_token = :claim_token AND state = 'sending'
RETURNING id;

-- name: delivery_finished
-- A final outcome other than success: 'failed' (refused, or out of attempts) or
-- 'unknown' (the request went out and no answer came back).
UPDATE zapi_deliveries
   SET state = :state, last_error = :error, last_http_status = :http_status,
       lease_until = NULL, updated_at = now()
 WHERE id = :id AND claim_token = :claim_token AND state = 'sending'
RETURNING id;

-- name: delivery_callback_failed
-- DeliveryCallback with an error: WhatsApp did not deliver what Z-API accepted.
-- Matched by either id; a replay changes nothing more. The media's zapi_sent is then
-- recomputed in the same transaction (media_lock_for_sync, media_zapi_sent_sync).
UPDATE zapi_deliveries
   SET state = 'failed', last_error = :error, updated_at = now()
 WHERE (zapi_message_id = :zapi_message_id OR zaap_id = :zaap_id)
   AND state <> 'failed'
RETURNING id, media_id;

-- name: media_lock_for_sync
-- Locks the media row whose zapi_sent is about to be recomputed (the caller goes in id
-- order). Taken before media_zapi_sent_sync so that statement's snapshot (a new one,
-- READ COMMITTED) sees every delivery change committed by whoever held the lock
-- before: two callbacks failing two deliveries of one media at once cannot both see
-- the other one as sent. One media per statement: on Citus a row lock is taken on one
-- shard only.
SELECT id FROM media_files WHERE id = :media_id FOR UPDATE;

-- name: media_zapi_sent_sync
-- zapi_sent and zapi_message_id from the media's deliveries: true (with the latest
-- sent delivery's message id) while any delivery is 'sent', else false and NULL. The
-- deliveries are read first (a CTE): on Citus they stay on the coordinator while the
-- media row is on a worker.
WITH latest AS (
    SELECT d.id, d.zapi_message_id
      FROM zapi_deliveries d
     WHERE d.media_id = :media_id AND d.state = 'sent'
     ORDER BY d.sent_at DESC NULLS LAST, d.id DESC
     LIMIT 1
)
UPDATE media_files f
   SET zapi_sent = EXISTS (SELECT 1 FROM latest),
       zapi_message_id = (SELECT zapi_message_id FROM latest),
       updated_at = now()
 WHERE f.id = :media_id
   AND (f.zapi_sent IS DISTINCT FROM EXISTS (SELECT 1 FROM latest)
        OR f.zapi_message_id IS DISTINCT FROM (SELECT zapi_message_id FROM latest))
RETURNING f.id, f.zapi_sent;

-- name: delivery_status
-- MessageStatusCallback: the furthest WhatsApp status seen (statuses may arrive out of
-- order or twice; an earlier one never overwrites a later one).
UPDATE zapi_deliveries
   SET whatsapp_status = :status, whatsapp_status_at = :status_at, updated_at = now()
 WHERE zapi_message_id = ANY(:ids::text[])
   AND coalesce(array_position(ARRAY['SENT', 'RECEIVED', 'READ', 'PLAYED'],
                               whatsapp_status::text), 0)
     < array_position(ARRAY['SENT', 'RECEIVED', 'READ', 'PLAYED'], :status::text)
RETURNING id;

-- name: outbox_depth
-- Deliveries not finished yet, by state (/metrics; served by the partial indexes on
-- queued and sending rows, so it stays cheap as the table grows).
SELECT state, count(*) AS deliveries
  FROM zapi_deliveries
 WHERE state IN ('queued', 'sending')
 GROUP BY state;
