-- Delivering outbox messages as signed webhooks, their attempts, channel subscriptions,
-- node endpoint health and secret rotation, and node callbacks.

ALTER TABLE outbox ADD COLUMN subscription_id TEXT;
ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at TEXT;
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN lease_until TEXT;
ALTER TABLE outbox ADD COLUMN delivered_at TEXT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_node ON outbox (node_id, status, created_at);

CREATE TABLE delivery_attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES outbox (message_id),
    started_at TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    error_class TEXT,                 -- dns, connect, tls, timeout, http, blocked, redirect
    excerpt TEXT,                     -- first bytes of the response or the error
    worker TEXT NOT NULL
);
CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id, attempt_id);

CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES api_keys (key_id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,             -- write-only
    event_types TEXT NOT NULL,        -- JSON array
    channel TEXT,                     -- only orders from this channel, when set
    failures INTEGER NOT NULL DEFAULT 0,
    disabled_at TEXT,
    disabled_reason TEXT,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);

ALTER TABLE nodes ADD COLUMN webhook_previous_secret TEXT;
ALTER TABLE nodes ADD COLUMN webhook_previous_until TEXT;
ALTER TABLE nodes ADD COLUMN webhook_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN webhook_disabled_at TEXT;
ALTER TABLE nodes ADD COLUMN webhook_disabled_reason TEXT;

CREATE TABLE shipment_events (
    event_id TEXT PRIMARY KEY,
    shipment_id TEXT NOT NULL REFERENCES shipments (shipment_id),
    type TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,             -- JSON: what the first call returned
    created_at TEXT NOT NULL
);
CREATE INDEX shipment_events_shipment ON shipment_events (shipment_id);

ALTER TABLE shipments ADD COLUMN carrier TEXT;
ALTER TABLE shipments ADD COLUMN tracking_number TEXT;
ALTER TABLE shipments ADD COLUMN requested_at TEXT;
