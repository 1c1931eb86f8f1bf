-- A/B comparisons of ruleset versions: live experiments (split or shadow) and replays.

CREATE TABLE experiments (
    experiment_id TEXT PRIMARY KEY,
    ruleset TEXT NOT NULL,
    champion INTEGER NOT NULL,
    challenger INTEGER NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('split', 'shadow')),
    challenger_share REAL NOT NULL CHECK (challenger_share >= 0 AND challenger_share <= 1),
    assign_by TEXT NOT NULL CHECK (assign_by IN ('order_id', 'customer_id')),
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    guardrails TEXT NOT NULL,         -- JSON
    status TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'promoted')),
    stop_reason TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    stopped_at TEXT
);
CREATE INDEX experiments_ruleset ON experiments (ruleset, status);

ALTER TABLE decisions ADD COLUMN experiment_id TEXT;
ALTER TABLE decisions ADD COLUMN variant TEXT;
CREATE INDEX decisions_experiment ON decisions (experiment_id, variant);

-- Shadow mode: what the challenger would have decided on the champion's very facts.
CREATE TABLE shadow_decisions (
    decision_id TEXT PRIMARY KEY REFERENCES decisions (decision_id),
    experiment_id TEXT NOT NULL REFERENCES experiments (experiment_id),
    result TEXT NOT NULL,             -- JSON: the challenger's decision, never acted on
    agrees INTEGER NOT NULL,
    difference TEXT NOT NULL,         -- JSON
    created_at TEXT NOT NULL
);
CREATE INDEX shadow_decisions_experiment ON shadow_decisions (experiment_id);

CREATE TABLE replays (
    replay_id TEXT PRIMARY KEY,
    ruleset TEXT NOT NULL,
    request TEXT NOT NULL,            -- JSON: versions (or draft) and selection
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    total INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    report TEXT,                      -- JSON
    changes TEXT,                     -- JSON
    error TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
