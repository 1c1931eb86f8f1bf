-- The console's sign-in sessions (app/console/sessions.py). A browser signs in once with
-- an API key and then carries a random session token in an HttpOnly cookie; only the
-- token's SHA-256 is stored, beside the CSRF token its pages send back with every change.
-- A session acts with its key's role and ends when it expires, when the person signs out,
-- or when the key is revoked.
CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys (key_id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
