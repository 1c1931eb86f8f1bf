-- Scenarios travel with versions. Each version keeps the scenarios it was released with,
-- immutable like its rules; ruleset_scenarios becomes the draft set: what the next
-- version of the ruleset will carry, edited by analysts, starting from the latest version's.

CREATE TABLE ruleset_version_scenarios (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    scenario_id TEXT NOT NULL,
    document TEXT NOT NULL,           -- canonical JSON
    PRIMARY KEY (name, version, scenario_id),
    FOREIGN KEY (name, version) REFERENCES ruleset_versions (name, version)
);

-- The scenarios so far were the ruleset's: they become the latest version's own. Older
-- versions keep none, so a rollback is never held up by scenarios written after them.
INSERT INTO ruleset_version_scenarios (name, version, scenario_id, document)
SELECT s.name, latest.version, s.scenario_id, s.document
FROM ruleset_scenarios s
JOIN (SELECT name, MAX(version) AS version FROM ruleset_versions GROUP BY name) latest
  ON latest.name = s.name;
