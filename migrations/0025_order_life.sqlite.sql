-- SQLite cannot change a CHECK constraint: transfers is rebuilt (nothing refers to it).
CREATE TABLE transfers_before_legs AS SELECT * FROM transfers;
DROP TABLE transfers;
CREATE TABLE transfers (
    transfer_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL REFERENCES skus (sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    origin_node_id TEXT REFERENCES nodes (node_id),
    origin TEXT,
    destination_node_id TEXT NOT NULL REFERENCES nodes (node_id),
    eta TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_transit', 'received', 'cancelled')),
    received_qty INTEGER,
    received_at TEXT,
    body_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    shipment_id TEXT
);
INSERT INTO transfers SELECT * FROM transfers_before_legs;
DROP TABLE transfers_before_legs;
CREATE INDEX transfers_open ON transfers (sku, destination_node_id, status);
CREATE INDEX transfers_leg ON transfers (shipment_id);
