-- Finding things: lists of orders and decisions, newest first, with cursors; decisions
-- found by the rules that fired in them.

CREATE TABLE decision_rules (
    decision_id TEXT NOT NULL REFERENCES decisions (decision_id),
    rule_id TEXT NOT NULL,
    PRIMARY KEY (decision_id, rule_id)
);
CREATE INDEX decision_rules_rule ON decision_rules (rule_id, decision_id);
CREATE INDEX decisions_created ON decisions (created_at, decision_id);
CREATE INDEX orders_created ON orders (created_at, order_id);
CREATE INDEX replays_created ON replays (created_at, replay_id);
