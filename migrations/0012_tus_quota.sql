-- tus: bounds per client (MEDIA_TUS_MAX_OPEN_PER_CLIENT, a token's max_bytes). Counting
-- a creator's unfinished uploads on every creation and every PATCH of a deferred-length
-- upload needs an index by creator; a PATCH in progress on a deferred-length upload
-- reserves the offset it may reach, so that two PATCHes of one token at once cannot
-- both spend the same bytes.
-- depends: 0010_tus_creator

ALTER TABLE tus_uploads ADD COLUMN reserved BIGINT CHECK (reserved >= 0);
CREATE INDEX tus_uploads_creator_idx ON tus_uploads (creator_identity);
