-- Counted refusal rows stay, each as one row (their count is lost).
DROP INDEX media_audit_log_refusal_idx;
ALTER TABLE media_audit_log DROP COLUMN minute;
ALTER TABLE media_audit_log DROP COLUMN count;
