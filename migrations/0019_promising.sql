-- Delivery promises. When a node works: its fulfilment calendar (JSON: cut-offs,
-- processing time, opening hours, closures), owned by app/network/nodes.py; NULL is
-- the defaults. Days without work shared by many nodes and carriers: calendars
-- (app/promising/calendars.py). Carrier services with their collection days, transit
-- times, delivery days and rates (app/promising/carriers.py).
ALTER TABLE nodes ADD COLUMN fulfilment TEXT;

CREATE TABLE calendars (
    calendar_id TEXT PRIMARY KEY,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE carrier_services (
    service_id TEXT PRIMARY KEY,
    carrier TEXT NOT NULL,
    service_level TEXT NOT NULL,
    active INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX carrier_services_level ON carrier_services (service_level, service_id);
