-- Orders, their decisions and shipments, the outbox the dispatcher delivers,
-- and what reservations need to follow orders and in-transit supply.

CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    status TEXT NOT NULL CHECK (status IN ('received', 'sourced', 'partially_sourced',
        'backordered', 'on_hold', 'cancelled', 'completed')),
    body TEXT NOT NULL,               -- the order as received (JSON)
    body_hash TEXT NOT NULL,          -- idempotency: the same id with another body is a conflict
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX orders_waiting ON orders (status, created_at);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    line_id TEXT NOT NULL,
    sku TEXT NOT NULL REFERENCES skus (sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    unit_price REAL NOT NULL,
    qty_allocated INTEGER NOT NULL DEFAULT 0 CHECK (qty_allocated >= 0 AND qty_allocated <= qty),
    PRIMARY KEY (order_id, line_id)
);
CREATE INDEX order_lines_sku ON order_lines (sku);

CREATE TABLE order_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    type TEXT NOT NULL,
    detail TEXT NOT NULL,             -- JSON
    created_at TEXT NOT NULL
);
CREATE INDEX order_events_order ON order_events (order_id, event_id);

-- Every decision, including simulations (kind = 'simulation', order_id not in orders).
CREATE TABLE decisions (
    decision_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('order', 'backorder', 'resource', 'simulation')),
    status TEXT NOT NULL,
    ruleset TEXT NOT NULL,
    ruleset_version INTEGER NOT NULL,
    ruleset_sha256 TEXT NOT NULL,
    facts TEXT NOT NULL,              -- JSON: every fact the rules saw, for replay
    context TEXT NOT NULL,            -- JSON: what allocation needed beyond the facts
    result TEXT NOT NULL,             -- JSON: the decision as returned
    created_at TEXT NOT NULL
);
CREATE INDEX decisions_order ON decisions (order_id, created_at);

CREATE TABLE shipments (
    shipment_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'requested', 'accepted', 'rejected',
        'picked', 'shipped', 'delivered', 'cancelled')),
    method TEXT NOT NULL,
    service_level TEXT NOT NULL,
    lines TEXT NOT NULL,              -- JSON: [{line_id, sku, qty}]
    estimated_cost REAL NOT NULL,
    distance_km REAL NOT NULL,
    node_day TEXT NOT NULL,           -- the day in the node's time zone, for daily capacity
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX shipments_order ON shipments (order_id);
CREATE INDEX shipments_capacity ON shipments (node_id, node_day, status);

-- Messages for the nodes, written in the same transaction as the decision.
CREATE TABLE outbox (
    message_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    node_id TEXT REFERENCES nodes (node_id),
    shipment_id TEXT REFERENCES shipments (shipment_id),
    order_id TEXT,
    payload TEXT NOT NULL,            -- JSON
    status TEXT NOT NULL DEFAULT 'pending',
    created_at TEXT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (status, created_at);

ALTER TABLE reservations ADD COLUMN supply TEXT NOT NULL DEFAULT 'on_hand'
    CHECK (supply IN ('on_hand', 'in_transit'));
ALTER TABLE reservations ADD COLUMN shipment_id TEXT REFERENCES shipments (shipment_id);
