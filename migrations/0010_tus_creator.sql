-- tus: the creator of an upload by identity, not by name. Any upload token for the same
-- message has the same name (token:<message id>), and a key name can be reused once the
-- key is revoked; only the creator's own key (by id) or token (by a digest of it) may
-- continue or terminate an upload.
-- depends: 0009_tus 0004_access_control

ALTER TABLE tus_uploads ADD COLUMN creator_identity VARCHAR(80);
-- Uploads in progress made by a key: that key (the active one of that name). Those made
-- by a token cannot be traced back to it; they stay NULL, which no request matches, and
-- expire (their client starts over, as tus clients do on a 404).
UPDATE tus_uploads t SET creator_identity = 'key:' || k.id
  FROM api_keys k
 WHERE k.name = t.creator AND k.revoked_at IS NULL;
