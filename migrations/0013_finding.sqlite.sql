-- SQLite: decisions made before 0013 are indexed by the rules that fired in them.
INSERT OR IGNORE INTO decision_rules (decision_id, rule_id)
SELECT d.decision_id, fired.value
FROM decisions d, json_each(json_extract(d.result, '$.explanation.rules_fired')) fired
WHERE json_valid(d.result);
