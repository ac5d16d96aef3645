-- Z-API deliveries: the outbox. A row is committed before any request to Z-API, so a
-- send survives restarts and crashes; workers in every server instance claim due rows
-- with FOR UPDATE SKIP LOCKED (sql/zapi.sql), so no row is sent by two of them.
-- depends: 0002_media_files 0008_instances
CREATE TABLE zapi_deliveries (
    id                 BIGSERIAL PRIMARY KEY,
    media_id           INTEGER NOT NULL REFERENCES media_files (id) ON DELETE CASCADE,
    phone              VARCHAR(64) NOT NULL,
    caption            TEXT,
    reply_to           VARCHAR(255),
    -- queued -> sending -> sent | failed | unknown (and back to queued for a retry).
    -- 'unknown': the request may have reached Z-API, which has no idempotency key, so
    -- it is not posted again unless ZAPI_RETRY_UNKNOWN says so.
    state              VARCHAR(16) NOT NULL DEFAULT 'queued'
                       CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The claim: who holds the row ('sending') and until when. A new token per claim,
    -- so a worker whose lease was recovered cannot overwrite a later claim's outcome.
    claim_token        UUID,
    lease_until        TIMESTAMPTZ,
    -- The server instance holding the claim (media_instances.id, no foreign key: those
    -- rows are pruned). Once it stops beating, its claims are recovered without
    -- waiting for the lease.
    claimed_by         UUID,
    -- Set just before the request is written: a lease that expires without it proves
    -- the request never left, and the row can be queued again safely.
    posted_at          TIMESTAMPTZ,
    last_error         TEXT,
    last_http_status   SMALLINT,
    zaap_id            VARCHAR(255),
    zapi_message_id    VARCHAR(255),
    sent_at            TIMESTAMPTZ,
    -- From MessageStatusCallback: SENT, RECEIVED, READ, PLAYED (the furthest seen).
    whatsapp_status    VARCHAR(16),
    whatsapp_status_at TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT zapi_deliveries_claim_when_sending CHECK (
        state <> 'sending' OR (claim_token IS NOT NULL AND lease_until IS NOT NULL))
);

-- The workers' scan: due rows only.
CREATE INDEX zapi_deliveries_due_idx ON zapi_deliveries (next_attempt_at, id)
    WHERE state = 'queued';
-- Claims in flight: counted against ZAPI_MAX_CONCURRENCY, recovered when expired.
CREATE INDEX zapi_deliveries_sending_idx ON zapi_deliveries (lease_until)
    WHERE state = 'sending';
CREATE INDEX zapi_deliveries_media_idx ON zapi_deliveries (media_id, id);
-- Webhooks name the message by WhatsApp's id or Z-API's.
CREATE INDEX zapi_deliveries_message_idx ON zapi_deliveries (zapi_message_id)
    WHERE zapi_message_id IS NOT NULL;
CREATE INDEX zapi_deliveries_zaap_idx ON zapi_deliveries (zaap_id)
    WHERE zaap_id IS NOT NULL;
