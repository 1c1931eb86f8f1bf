-- Operations: the request that caused each decision and outbox message (its id travels
-- with the webhook), and the heartbeats of running dispatchers (readiness, metrics).

ALTER TABLE decisions ADD COLUMN request_id TEXT;
ALTER TABLE outbox ADD COLUMN request_id TEXT;

CREATE TABLE dispatchers (
    worker TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    beat_at TEXT NOT NULL
);
