-- Ruleset versions (immutable), their activations, and the scenarios that test them.

CREATE TABLE ruleset_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    sha256 TEXT NOT NULL,
    document TEXT NOT NULL,            -- canonical JSON
    description TEXT,
    rule_count INTEGER NOT NULL,
    source TEXT NOT NULL,              -- 'api' or the file it was loaded from
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

-- The active version of a ruleset at time T is the one named by the newest
-- activation whose effective_at <= T: scheduled activations simply lie ahead.
CREATE TABLE ruleset_activations (
    activation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_version INTEGER,
    kind TEXT NOT NULL CHECK (kind IN ('activate', 'rollback', 'initial')),
    effective_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES ruleset_versions (name, version)
);
CREATE INDEX ruleset_activations_effective ON ruleset_activations (name, effective_at, activation_id);

CREATE TABLE ruleset_scenarios (
    name TEXT NOT NULL,
    scenario_id TEXT NOT NULL,
    document TEXT NOT NULL,
    source TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, scenario_id)
);
