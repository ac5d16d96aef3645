-- Undo 0010_tus_creator: back to comparing the creator's name.
ALTER TABLE tus_uploads DROP COLUMN creator_identity;
