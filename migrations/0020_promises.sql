-- Promises kept and measured. Each shipment keeps the carrier service that carries it,
-- the day it leaves its node, the day (and window) the customer was promised, and when
-- it was delivered, so reports can say which promises were kept (app/shipments.py).
ALTER TABLE shipments ADD COLUMN carrier_service TEXT;
ALTER TABLE shipments ADD COLUMN dispatch_date TEXT;
ALTER TABLE shipments ADD COLUMN promised_date TEXT;
ALTER TABLE shipments ADD COLUMN promised_until TEXT;
ALTER TABLE shipments ADD COLUMN delivered_at TEXT;
CREATE INDEX shipments_promised ON shipments (promised_date);
CREATE INDEX shipments_collected ON shipments (dispatch_date, carrier_service);

-- Promises a channel held: the options answered, the one held, its stock held by
-- reservations whose reference is 'promise:<promise_id>' until expires_at, and the order
-- that used it (app/promising/holds.py).
CREATE TABLE promises (
    promise_id TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    held_option TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'used', 'expired', 'released')),
    expires_at TEXT NOT NULL,
    order_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX promises_expiry ON promises (status, expires_at);
