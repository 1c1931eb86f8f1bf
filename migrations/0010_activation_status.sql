-- A scheduled activation runs its version's scenarios again when it falls due: it takes
-- effect only if they pass; otherwise it is recorded as failed, with the reason, and
-- the version before it stays active.

ALTER TABLE ruleset_activations ADD COLUMN status TEXT NOT NULL DEFAULT 'effective'
    CHECK (status IN ('scheduled', 'effective', 'failed'));
ALTER TABLE ruleset_activations ADD COLUMN failure TEXT;
ALTER TABLE ruleset_activations ADD COLUMN checked_at TEXT;
