-- Refusals without a valid credential (a made-up Bearer, a bad sig) were one row each:
-- one client wrote ~1,390 rows a second, kept forever. They are now one row per
-- (minute, client address, actor, outcome), counted: the first refusal inserts the
-- row, the next ones in that minute add one to its count (an upsert on the unique
-- index below, so every instance and worker process counts into the same row).
-- Ordinary rows have minute NULL and count 1, and are outside the index.
--
-- Metadata only for the columns (a constant default rewrites nothing); the index is
-- partial and starts empty of entries, but its build still scans the table once.
-- depends: 0004_access_control 0011_legacy_processed
ALTER TABLE media_audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE media_audit_log ADD COLUMN minute TIMESTAMPTZ;
CREATE UNIQUE INDEX media_audit_log_refusal_idx
    ON media_audit_log (minute, (coalesce(host(client_addr), '')), actor, outcome)
    WHERE minute IS NOT NULL;
