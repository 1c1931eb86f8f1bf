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
-- Where the order goes now, when that changed after it was placed (JSON, as the body's
-- delivery; NULL: as placed): a customer who took up another pickup store.
ALTER TABLE orders ADD COLUMN delivery TEXT;
-- When the channel was asked about an order that waits past its deadline (a hold, a
-- back-order with no supply in sight, an offer); cleared when the order's status moves.
ALTER TABLE orders ADD COLUMN waiting_escalated_at TEXT;

-- Quantities cancelled for good on a line (a pickup nobody can hand over, per the ruleset):
-- what is left to serve is qty - qty_cancelled.
ALTER TABLE order_lines ADD COLUMN qty_cancelled INTEGER NOT NULL DEFAULT 0;

-- An accepted shipment is the node's commitment to its dispatch date: ship_by is the end of
-- the node's working day that follows the dispatch date by the ruleset's grace, at_risk_at
-- when the service asked the node about it, withdraw_by when it is taken back (the holds'
-- expires_at says the same). ready_at: a pickup ready for collection.
ALTER TABLE shipments ADD COLUMN ship_by TEXT;
ALTER TABLE shipments ADD COLUMN withdraw_by TEXT;
ALTER TABLE shipments ADD COLUMN at_risk_at TEXT;
ALTER TABLE shipments ADD COLUMN ready_at TEXT;
CREATE INDEX shipments_ship_by ON shipments (status, ship_by);

-- A ship-complete order no single node ships whole may be consolidated: the other nodes send
-- their part to the node that ships it all (a transfer leg: a shipment of method 'transfer',
-- with its transfer in transit). shipment_id: the leg a transfer belongs to. A leg taken
-- back cancels its transfer (status 'cancelled', in 0025's dialect files).
ALTER TABLE transfers ADD COLUMN shipment_id TEXT;
