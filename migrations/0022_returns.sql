-- Returns: what customers send back, where it goes (a returns ruleset decides), what
-- happens to each line, and the refund (app/returns/returns.py). An order whose goods
-- come back becomes partially_returned or returned (app/orders.py); each return's
-- decision is a decision of kind 'return', replayed and compared like the others.

CREATE TABLE returns (
    return_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    channel TEXT NOT NULL,
    method TEXT NOT NULL CHECK (method IN ('drop_off', 'ship_back', 'collect')),
    status TEXT NOT NULL CHECK (status IN ('expected', 'kept', 'received', 'inspected',
        'closed', 'cancelled')),
    point_node_id TEXT REFERENCES nodes (node_id),
    ruleset_version INTEGER NOT NULL,
    refund_due TEXT NOT NULL,         -- at_decision, at_drop_off, on_receipt, after_inspection
    refund_total REAL NOT NULL,
    refund_sent_at TEXT,              -- when return.refund_due went to the channel
    body TEXT NOT NULL,               -- the request as received (JSON)
    body_hash TEXT NOT NULL,
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX returns_order ON returns (order_id);
CREATE INDEX returns_point ON returns (point_node_id, status);
CREATE INDEX returns_created ON returns (created_at, return_id);

CREATE TABLE return_lines (
    return_id TEXT NOT NULL REFERENCES returns (return_id),
    line_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL CHECK (qty > 0),
    reason TEXT NOT NULL,
    condition TEXT NOT NULL,          -- as the customer stated it
    disposition TEXT NOT NULL,        -- expected on arrival
    refund REAL NOT NULL,
    inspected_condition TEXT,
    final_disposition TEXT,
    position INTEGER NOT NULL,
    PRIMARY KEY (return_id, line_id)
);
CREATE INDEX return_lines_order ON return_lines (order_id, line_id);

-- A point's callbacks (received, inspected, disposed): idempotent per event id.
CREATE TABLE return_events (
    return_id TEXT NOT NULL REFERENCES returns (return_id),
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (return_id, event_id)
);
