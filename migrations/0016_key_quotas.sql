-- Quotas and upload rates per API key (issue 26, "Storage hygiene").
--
-- api_keys gets its limits (NULL: none). key_usage holds what each key's uploads use:
-- bytes and files of its complete media (media_files.key_id, set when an upload
-- finishes), and bytes reserved by uploads in progress. An upload reserves its bytes
-- batch by batch while it streams (quota_reservations, one row per upload in
-- progress), with an UPDATE whose WHERE is the quota: concurrent uploads of one key
-- serialise on the key's usage row, so they never reserve past it. At the finish the
-- reservation becomes usage in the same transaction; deleting media gives it back
-- (trigger below, so a cascade from messages does too). Reservations of uploads that
-- died with their instance are released by the janitor.
-- depends: 0015_retention
ALTER TABLE api_keys ADD COLUMN quota_bytes BIGINT CHECK (quota_bytes >= 0);
ALTER TABLE api_keys ADD COLUMN quota_files INTEGER CHECK (quota_files >= 0);
ALTER TABLE api_keys ADD COLUMN uploads_per_minute INTEGER CHECK (uploads_per_minute >= 0);

-- Keys are revoked, never deleted; SET NULL only so a DBA's delete is not refused.
ALTER TABLE media_files ADD COLUMN key_id INTEGER REFERENCES api_keys (id) ON DELETE SET NULL;

CREATE TABLE key_usage (
    key_id   INTEGER PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    bytes    BIGINT NOT NULL DEFAULT 0,
    files    INTEGER NOT NULL DEFAULT 0,
    reserved BIGINT NOT NULL DEFAULT 0
);
INSERT INTO key_usage (key_id) SELECT id FROM api_keys;

CREATE TABLE quota_reservations (
    id         BIGSERIAL PRIMARY KEY,
    key_id     INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    bytes      BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX quota_reservations_updated_idx ON quota_reservations (updated_at);

-- Uploads started per key and minute (MEDIA rate: api_keys.uploads_per_minute).
CREATE TABLE key_upload_minutes (
    key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    minute TIMESTAMPTZ NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (key_id, minute)
);

CREATE FUNCTION media_usage_returned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE key_usage SET bytes = bytes - OLD.file_size, files = files - 1
     WHERE key_id = OLD.key_id;
    RETURN NULL;
END $$;

CREATE TRIGGER media_usage_returned AFTER DELETE ON media_files FOR EACH ROW
    WHEN (OLD.key_id IS NOT NULL AND OLD.upload_state = 'complete')
    EXECUTE FUNCTION media_usage_returned();
