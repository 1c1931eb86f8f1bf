-- A node's region (a sales or logistics region the retailer names, e.g. "London"): rules
-- can prefer the nodes of the order's region.
ALTER TABLE nodes ADD COLUMN region TEXT;
