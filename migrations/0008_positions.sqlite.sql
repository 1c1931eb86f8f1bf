-- What SQLite's rowid ordered, as columns every database has: the lines of an order in
-- the order they were sent, and the messages of one shipment in the order they were
-- written (the dispatcher sends a shipment's messages one after another).
-- (SQLite: rows written before this migration take their rowid as position.)

ALTER TABLE order_lines ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
UPDATE order_lines SET position = rowid;
UPDATE outbox SET position = rowid;
CREATE INDEX outbox_shipment_position ON outbox (shipment_id, position);
