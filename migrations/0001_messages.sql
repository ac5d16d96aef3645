-- The chat database this service runs beside has its own messages table; only a
-- standalone deployment (or a test database) lacks one, and then a minimal one will do.
-- depends:
CREATE TABLE IF NOT EXISTS messages (
    id         SERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
