DROP TABLE media_audit_log;
DROP TABLE service_secrets;
DROP TABLE api_keys;
