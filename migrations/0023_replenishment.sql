-- Replenishment: what stores and DCs sold (demand feeds), what suppliers offer (their
-- catalogues), and runs that propose purchase orders and transfers, approved by rule or
-- by an analyst, sent to suppliers and DCs, and followed to receipt
-- (app/replenishment/). Each run's decision per destination is a decision of kind
-- 'replenishment', replayed and compared like the others.

-- Units sold per node, SKU and day, as the node's systems report them; a later feed for
-- the same day replaces the figure (a correction).
CREATE TABLE demand (
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    day TEXT NOT NULL,                -- YYYY-MM-DD, the node's day
    units INTEGER NOT NULL CHECK (units >= 0),
    feed_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (node_id, sku, day)
);
CREATE INDEX demand_day ON demand (day);

CREATE TABLE demand_feeds (
    feed_id TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- A supplier's terms (one row per supplier node) and what it offers per SKU.
CREATE TABLE suppliers (
    supplier_id TEXT PRIMARY KEY REFERENCES nodes (node_id),
    status TEXT NOT NULL CHECK (status IN ('active', 'quality_hold', 'suspended')),
    min_order_value REAL NOT NULL,
    cost_per_delivery REAL NOT NULL,
    delivery_days TEXT NOT NULL,      -- JSON list of weekdays (mon..sun) it delivers on
    direct_to_store INTEGER NOT NULL, -- 1: it delivers to stores as well as to DCs
    lead_time_days INTEGER NOT NULL,
    body_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE supplier_items (
    supplier_id TEXT NOT NULL REFERENCES suppliers (supplier_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    unit_cost REAL NOT NULL,
    pack_size INTEGER NOT NULL CHECK (pack_size > 0),
    min_order_qty INTEGER NOT NULL CHECK (min_order_qty >= 0),
    lead_time_days INTEGER NOT NULL,
    PRIMARY KEY (supplier_id, sku)
);
CREATE INDEX supplier_items_sku ON supplier_items (sku);

CREATE TABLE replenishment_runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('running', 'proposed', 'failed')),
    dry_run INTEGER NOT NULL,
    scope TEXT NOT NULL,              -- JSON: nodes, skus, categories asked for
    horizon TEXT NOT NULL,            -- the review day the run plans (YYYY-MM-DD)
    ruleset_version INTEGER,
    positions_total INTEGER NOT NULL DEFAULT 0,
    positions_done INTEGER NOT NULL DEFAULT 0,
    summary TEXT,                     -- JSON, once proposed
    error TEXT,
    requested_by TEXT,
    body_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX replenishment_runs_created ON replenishment_runs (created_at, run_id);

-- Purchase orders (to suppliers) and transfers (from DCs), proposed by a run.
CREATE TABLE replenishment_orders (
    order_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES replenishment_runs (run_id),
    type TEXT NOT NULL CHECK (type IN ('purchase_order', 'transfer')),
    source_node_id TEXT NOT NULL REFERENCES nodes (node_id),
    destination_node_id TEXT NOT NULL REFERENCES nodes (node_id),
    delivery_day TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('proposed', 'requested', 'accepted', 'rejected',
        'shipped', 'received', 'cancelled')),
    approved_by TEXT,                 -- rule, or the analyst's key name
    approved_at TEXT,
    value REAL NOT NULL,
    delivery_cost REAL NOT NULL,
    eta TEXT,
    decision_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX replenishment_orders_run ON replenishment_orders (run_id);
CREATE INDEX replenishment_orders_open ON replenishment_orders (destination_node_id, status);

CREATE TABLE replenishment_lines (
    order_id TEXT NOT NULL REFERENCES replenishment_orders (order_id),
    sku TEXT NOT NULL REFERENCES skus (sku),
    qty INTEGER NOT NULL CHECK (qty > 0),
    unit_cost REAL NOT NULL,
    landed_unit_cost REAL NOT NULL,
    transfer_id TEXT,                 -- its in-transit supply once accepted
    received_qty INTEGER,
    PRIMARY KEY (order_id, sku)
);

-- Runs are idempotent per position and horizon: a position planned for a review day
-- is not planned again that day (unless its order was rejected or cancelled).
CREATE TABLE replenishment_planned (
    node_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    horizon TEXT NOT NULL,
    run_id TEXT NOT NULL,
    order_id TEXT,
    PRIMARY KEY (node_id, sku, horizon)
);

-- Callbacks of suppliers and DCs: idempotent per event id.
CREATE TABLE replenishment_events (
    order_id TEXT NOT NULL REFERENCES replenishment_orders (order_id),
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (order_id, event_id)
);
