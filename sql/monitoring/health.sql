-- name: ping
-- Readiness: the database answers.
SELECT 1;

-- name: connection_capacity
-- The client connections the server accepts beyond those it keeps for superusers:
-- what every process's pool together must stay within.
SELECT current_setting('max_connections')::int
       - current_setting('superuser_reserved_connections')::int AS available;
