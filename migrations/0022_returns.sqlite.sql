-- SQLite cannot change a CHECK constraint: orders and decisions are rebuilt. Its children keep
-- pointing at it by name; each row put back is their parent again before the commit.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE orders_before_returns AS SELECT * FROM orders;
DROP TABLE orders;
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    status TEXT NOT NULL CHECK (status IN ('received', 'sourced', 'partially_sourced',
        'backordered', 'on_hold', 'cancelled', 'completed', 'partially_returned', 'returned')),
    body TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO orders (order_id, channel, customer_id, status, body, body_hash, created_at,
    updated_at)
SELECT order_id, channel, customer_id, status, body, body_hash, created_at, updated_at
FROM orders_before_returns;
DROP TABLE orders_before_returns;
CREATE INDEX orders_waiting ON orders (status, created_at);
CREATE INDEX orders_created ON orders (created_at, order_id);

CREATE TABLE decisions_before_returns AS SELECT * FROM decisions;
DROP TABLE decisions;
CREATE TABLE decisions (
    decision_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('order', 'backorder', 'resource', 'simulation',
        'return')),
    status TEXT NOT NULL,
    ruleset TEXT NOT NULL,
    ruleset_version INTEGER NOT NULL,
    ruleset_sha256 TEXT NOT NULL,
    facts TEXT NOT NULL,
    context TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    experiment_id TEXT,
    variant TEXT,
    request_id TEXT
);
INSERT INTO decisions (decision_id, order_id, kind, status, ruleset, ruleset_version,
    ruleset_sha256, facts, context, result, created_at, experiment_id, variant, request_id)
SELECT decision_id, order_id, kind, status, ruleset, ruleset_version, ruleset_sha256, facts,
    context, result, created_at, experiment_id, variant, request_id
FROM decisions_before_returns;
DROP TABLE decisions_before_returns;
CREATE INDEX decisions_order ON decisions (order_id, created_at);
CREATE INDEX decisions_experiment ON decisions (experiment_id, variant);
CREATE INDEX decisions_created ON decisions (created_at, decision_id);
