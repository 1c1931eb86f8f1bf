-- The order's life after its decision (app/lifecycle/).
--
-- The promise an order was quoted, kept on the order itself so that every later decision
-- (a rejection, a lapse, a back-order resumed, a release) is made for the same date and
-- service level: promised_by (the end of the quoted window), requested_service and the
-- promise it came from. promise_broken_at: when the service first found that no node can
-- keep that date any more (the channel was told; the report counts the order broken).
ALTER TABLE orders ADD COLUMN promised_by TEXT;
ALTER TABLE orders ADD COLUMN requested_service TEXT;
ALTER TABLE orders ADD COLUMN promise_id TEXT;
ALTER TABLE orders ADD COLUMN promise_broken_at TEXT;
-- Why an open order waits, and what happens next (app/lifecycle/stuck.py): a code, words
-- for people, and the deadline after which the channel is asked or the order is decided.
ALTER TABLE orders ADD COLUMN waiting_reason TEXT;
ALTER TABLE orders ADD COLUMN waiting_detail TEXT;
ALTER TABLE orders ADD COLUMN waiting_until TEXT;
ALTER TABLE orders ADD COLUMN waiting_escalated_at TEXT;

-- An accepted shipment is the node's commitment to its dispatch date: ship_by is the end of
-- the node's working day that follows the dispatch date by the ruleset's grace, at_risk_at
-- when the service asked the node about it, withdraw_by when it is taken back (the holds'
-- expires_at says the same). ready_at: a pickup ready for collection.
ALTER TABLE shipments ADD COLUMN ship_by TEXT;
ALTER TABLE shipments ADD COLUMN withdraw_by TEXT;
ALTER TABLE shipments ADD COLUMN at_risk_at TEXT;
ALTER TABLE shipments ADD COLUMN ready_at TEXT;
CREATE INDEX shipments_ship_by ON shipments (status, ship_by);
CREATE INDEX orders_waiting_until ON orders (waiting_until);
