ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('received', 'sourced',
    'partially_sourced', 'backordered', 'on_hold', 'cancelled', 'completed',
    'partially_returned', 'returned'));
ALTER TABLE decisions DROP CONSTRAINT decisions_kind_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_kind_check CHECK (kind IN ('order', 'backorder',
    'resource', 'simulation', 'return'));
