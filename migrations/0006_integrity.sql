-- Integrity under real timing: holds that live as long as their shipment, stock movements
-- dated at the node, durable back-order wake-ups, per-shipment event ids, attempts logged
-- before they are made, and circuit breakers for webhook endpoints.

-- Why a shipment was withdrawn by the service (not by the node): ack_timeout, hold_lapsed,
-- recount, cancelled. A node excluded for a line is one whose shipment of it was rejected or
-- withdrawn for a deadline or a lapsed hold.
ALTER TABLE shipments ADD COLUMN withdrawn_reason TEXT;
CREATE INDEX shipments_live ON shipments (status, requested_at);
CREATE INDEX reservations_shipment ON reservations (shipment_id, status);
-- A count showed a picked shipment's goods gone before the node said it shipped: the hold
-- stays (it still lapses with its shipment) but no longer counts against on hand.
ALTER TABLE reservations ADD COLUMN counted_at TEXT;
CREATE INDEX reservations_lapse ON reservations (status, expires_at);

-- Goods that left or arrived at a node, dated when it happened there. A count (snapshot) taken
-- at T already reflects every movement before T, and none after: on hand = count + movements
-- after T.
CREATE TABLE stock_movements (
    movement_id INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    qty INTEGER NOT NULL,             -- signed: shipped < 0, received > 0
    kind TEXT NOT NULL CHECK (kind IN ('shipped', 'received')),
    reference TEXT NOT NULL,          -- the shipment or transfer
    at TEXT NOT NULL,                 -- when it happened at the node
    counted INTEGER NOT NULL,         -- 1 when a newer count already reflected it on arrival
    created_at TEXT NOT NULL
);
CREATE INDEX stock_movements_position ON stock_movements (node_id, sku, at);

-- SKUs whose available stock may have risen: waiting orders are decided again for them.
-- Written in the transaction that raised the stock; removed once the back-orders ran.
CREATE TABLE atp_raised (
    sku TEXT PRIMARY KEY REFERENCES skus (sku),
    raised_at TEXT NOT NULL
);

-- Node events are idempotent per shipment: the shipment is part of the key.
CREATE TABLE shipment_events_keyed (
    shipment_id TEXT NOT NULL REFERENCES shipments (shipment_id),
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (shipment_id, event_id)
);
INSERT INTO shipment_events_keyed (shipment_id, event_id, type, body_hash, result, created_at)
    SELECT shipment_id, event_id, type, body_hash, result, created_at FROM shipment_events;
DROP TABLE shipment_events;
ALTER TABLE shipment_events_keyed RENAME TO shipment_events;

-- An attempt is written before the request goes out (finished_at NULL while in flight), so a
-- worker killed mid-send leaves a trace.
CREATE TABLE delivery_attempts_logged (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES outbox (message_id),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms REAL,
    status_code INTEGER,
    error_class TEXT,
    excerpt TEXT,
    worker TEXT NOT NULL
);
INSERT INTO delivery_attempts_logged (attempt_id, message_id, started_at, finished_at,
    duration_ms, status_code, error_class, excerpt, worker)
    SELECT attempt_id, message_id, started_at, started_at, duration_ms, status_code, error_class,
    excerpt, worker FROM delivery_attempts;
DROP TABLE delivery_attempts;
ALTER TABLE delivery_attempts_logged RENAME TO delivery_attempts;
CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id, attempt_id);

-- Circuit breakers: one per webhook endpoint ('node:ID' or 'subscription:ID').
CREATE TABLE endpoint_circuits (
    endpoint TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    failures INTEGER NOT NULL DEFAULT 0,   -- consecutive failed attempts
    failing_since TEXT,                    -- first failure of the current run of failures
    open_until TEXT,                       -- no attempts before this (open), or probe lease end
    probe_message_id TEXT,                 -- the one message allowed through while half open
    opened_count INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

CREATE INDEX outbox_shipment ON outbox (shipment_id, status, created_at);
