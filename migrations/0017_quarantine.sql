-- Quarantine (issue 26): content an administrator pulled, by its sha256, so every
-- media showing the same bytes stops being served (451), in the old model (sha256 on
-- media_files) and the content-addressed one alike. Kept until released or deleted.
--
-- Every instance caches media metadata and chunks, and hears about deletes through
-- NOTIFY media_deleted (server/store/invalidation.py). A quarantine, and its release,
-- is announced on the same channel for each media showing the content: every
-- instance drops what it cached of them at the commit, as for a delete.
-- depends: 0016_key_quotas
CREATE TABLE quarantined_contents (
    sha256         BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    reason         TEXT NOT NULL,
    quarantined_by VARCHAR(120) NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    media_id       INTEGER       -- the media it was asked through (no FK: kept after it)
);
CREATE INDEX quarantined_contents_at_idx ON quarantined_contents (quarantined_at, sha256);

-- Why a content is quarantined (NULL: it is not), for every statement that returns a
-- media record (its quarantine_reason), as media_variant_list gives its variants.
CREATE FUNCTION media_quarantine_reason(p_sha256 BYTEA) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT reason FROM quarantined_contents WHERE sha256 = p_sha256
$$;

-- Finding the media that show a content (this trigger, the scan worker).
CREATE INDEX media_files_sha256_idx ON media_files (sha256) WHERE sha256 IS NOT NULL;

CREATE FUNCTION quarantine_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    digest BYTEA := CASE WHEN TG_OP = 'DELETE' THEN OLD.sha256 ELSE NEW.sha256 END;
BEGIN
    PERFORM pg_notify('media_deleted', id::text)
       FROM media_files WHERE sha256 = digest AND upload_state = 'complete';
    RETURN NULL;
END $$;

CREATE TRIGGER quarantined_contents_notify AFTER INSERT OR DELETE ON quarantined_contents
    FOR EACH ROW EXECUTE FUNCTION quarantine_notify();

-- Contents stored without a verdict while clamd was unreachable (MEDIA_SCAN_FAIL=open):
-- the scan worker scans them when it is back, quarantining what it finds.
CREATE TABLE unscanned_contents (
    sha256     BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    media_id   INTEGER NOT NULL,   -- one media showing it, to read the bytes from
    since      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- taken by one server process's scan worker (the others skip it meanwhile)
    claimed_at TIMESTAMPTZ
);
