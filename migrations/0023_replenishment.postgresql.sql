ALTER TABLE decisions DROP CONSTRAINT decisions_kind_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_kind_check CHECK (kind IN ('order', 'backorder',
    'resource', 'simulation', 'return', 'replenishment'));
