-- A media's placeholder: its BlurHash (4x3 components, 28 characters), computed at
-- upload for images and videos; NULL for the others and for media stored before.
-- Metadata only: a column without a default rewrites nothing.
-- depends: 0005_media_processing 0013_audit_refusals
ALTER TABLE media_files ADD COLUMN placeholder VARCHAR(100);
