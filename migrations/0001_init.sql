-- The network, inventory, customers and API keys.
-- Times are UTC ISO 8601 text ("2026-11-25T18:00:00.000000Z"), which sorts as text.

CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('store', 'dc', '3pl', 'supplier')),
    name TEXT NOT NULL,
    address TEXT NOT NULL,            -- JSON: lines, city, postcode, country
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    capabilities TEXT NOT NULL,       -- JSON array
    daily_capacity INTEGER,           -- orders per day; NULL means unlimited
    priority INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    timezone TEXT NOT NULL,
    webhook_url TEXT,
    webhook_secret TEXT,              -- write-only: never returned, never logged
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX nodes_type ON nodes (type, active);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'channel', 'node')),
    node_id TEXT REFERENCES nodes (node_id),
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CHECK ((role = 'node') = (node_id IS NOT NULL))
);

CREATE TABLE skus (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    weight_kg REAL NOT NULL,
    category TEXT NOT NULL,
    hazmat INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Drop-ship: the suppliers that can ship a SKU, and at what cost.
CREATE TABLE sku_suppliers (
    sku TEXT NOT NULL REFERENCES skus (sku) ON DELETE CASCADE,
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    cost REAL NOT NULL,
    lead_time_days INTEGER,
    PRIMARY KEY (sku, node_id)
);
CREATE INDEX sku_suppliers_node ON sku_suppliers (node_id);

CREATE TABLE stock (
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
    snapshot_as_of TEXT,              -- as_of of the newest snapshot applied
    feed_as_of TEXT NOT NULL,         -- as_of of the newest feed (snapshot or delta) applied
    updated_at TEXT NOT NULL,
    PRIMARY KEY (node_id, sku)
);
CREATE INDEX stock_sku ON stock (sku);

CREATE TABLE safety_stock (
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (node_id, sku)
);

CREATE TABLE safety_stock_defaults (
    node_type TEXT PRIMARY KEY CHECK (node_type IN ('store', 'dc', '3pl', 'supplier')),
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    updated_at TEXT NOT NULL
);

-- Processed inventory feeds: idempotency on feed_id, and the result a replay returns.
CREATE TABLE feeds (
    feed_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    mode TEXT NOT NULL,
    as_of TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,             -- JSON
    received_at TEXT NOT NULL
);
CREATE INDEX feeds_node ON feeds (node_id, as_of);

-- In-transit supply.
CREATE TABLE transfers (
    transfer_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL REFERENCES skus (sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    origin_node_id TEXT REFERENCES nodes (node_id),
    origin TEXT,                      -- free text when the origin is outside the network
    destination_node_id TEXT NOT NULL REFERENCES nodes (node_id),
    eta TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_transit', 'received')),
    received_qty INTEGER,
    received_at TEXT,
    body_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX transfers_open ON transfers (sku, destination_node_id, status);

CREATE TABLE reservations (
    reservation_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    status TEXT NOT NULL CHECK (status IN ('active', 'released', 'consumed', 'expired')),
    reference TEXT,                   -- what holds it, e.g. an order line
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX reservations_active ON reservations (sku, node_id, status, expires_at);
CREATE INDEX reservations_reference ON reservations (reference);

CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,                       -- personal data: stored only when the setting allows
    phone TEXT,                       -- personal data: stored only when the setting allows
    tier TEXT NOT NULL,
    segments TEXT NOT NULL,           -- JSON array
    default_address_id TEXT,
    preferred_pickup_node_id TEXT REFERENCES nodes (node_id),
    lifetime_orders INTEGER NOT NULL DEFAULT 0,
    lifetime_value REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE customer_addresses (
    customer_id TEXT NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    address_id TEXT NOT NULL,
    label TEXT,
    lines TEXT NOT NULL,              -- JSON array
    city TEXT NOT NULL,
    postcode TEXT NOT NULL,
    country TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (customer_id, address_id)
);
