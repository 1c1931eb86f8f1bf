-- The shipments of each node on each of its own days that count against its daily
-- capacity (every one not cancelled). A decision reads one row per node instead of
-- counting that day's shipments, of which a busy node has thousands by the evening.
-- Owned by app/shipments.py, which keeps it with every shipment created or cancelled.
CREATE TABLE node_day_shipments (
    node_id TEXT NOT NULL,
    node_day TEXT NOT NULL,
    shipments INTEGER NOT NULL,
    PRIMARY KEY (node_id, node_day)
);
INSERT INTO node_day_shipments (node_id, node_day, shipments)
SELECT node_id, node_day, COUNT(*) FROM shipments WHERE status != 'cancelled'
GROUP BY node_id, node_day;
