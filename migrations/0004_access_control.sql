-- Access control: API keys (only a hash of each), the generated URL-signing key, and
-- the audit log of every action that changes something.
-- depends: 0002_media_files

-- API keys for the chat backend and operators. The key itself is shown once by
-- `keys create` and never stored: only its SHA-256, looked up by equality.
CREATE TABLE api_keys (
    id           SERIAL PRIMARY KEY,
    name         VARCHAR(100) NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    scope        VARCHAR(16) NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    key_hash     BYTEA NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
-- A name is reused only once its earlier key is revoked; revoke works by name.
CREATE UNIQUE INDEX api_keys_active_name_idx ON api_keys (name) WHERE revoked_at IS NULL;

-- Secrets the service generates for itself when none is configured (the URL-signing
-- key when MEDIA_SIGNING_KEYS is unset), so every instance agrees on them.
CREATE TABLE service_secrets (
    name       VARCHAR(64) PRIMARY KEY,
    secret     BYTEA NOT NULL CHECK (octet_length(secret) >= 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Who did what, when, from where, and how it ended. No foreign keys: the trail must
-- outlive the media and messages it talks about.
CREATE TABLE media_audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       VARCHAR(120) NOT NULL,     -- key name, token:<message id>, signed-url, cli
    action      VARCHAR(32) NOT NULL,      -- upload, delete, key_created, access_denied ...
    media_id    INTEGER,
    message_id  INTEGER,
    client_addr INET,
    user_agent  VARCHAR(300),
    request_id  VARCHAR(128),
    outcome     VARCHAR(200) NOT NULL      -- ok, or what went wrong
);
CREATE INDEX media_audit_log_at_idx ON media_audit_log (at);
CREATE INDEX media_audit_log_media_idx ON media_audit_log (media_id, at)
    WHERE media_id IS NOT NULL;
CREATE INDEX media_audit_log_action_idx ON media_audit_log (action, at);
