-- PostgreSQL: decisions made before 0013 are indexed by the rules that fired in them.
INSERT INTO decision_rules (decision_id, rule_id)
SELECT DISTINCT d.decision_id, fired
FROM decisions d, jsonb_array_elements_text((d.result::jsonb) -> 'explanation' -> 'rules_fired') fired
ON CONFLICT DO NOTHING;
