-- SQLite cannot change a CHECK constraint: decisions is rebuilt to take kind 'replenishment'.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE decisions_before_replenishment AS SELECT * FROM decisions;
DROP TABLE decisions;
CREATE TABLE decisions (
    decision_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('order', 'backorder', 'resource', 'simulation',
        'return',
        'replenishment')),
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
FROM decisions_before_replenishment;
DROP TABLE decisions_before_replenishment;
CREATE INDEX decisions_order ON decisions (order_id, created_at);
CREATE INDEX decisions_experiment ON decisions (experiment_id, variant);
CREATE INDEX decisions_created ON decisions (created_at, decision_id);
