-- The customer's view of an order (app/lifecycle/tracking.py): what the customer was last
-- told, as JSON: the order's customer status, each parcel's stage, the quantities
-- cancelled and back-ordered, the delay and the number of the last message. Each change
-- of an order is compared with it in the change's own transaction, and every difference
-- is a message to the channel, numbered in order.
ALTER TABLE orders ADD COLUMN customer_told TEXT;

-- Substitution: the SKUs that may replace a SKU that is short, best first (JSON array), and
-- on an order line the SKU the customer ordered when a substitute replaced it (NULL: none).
ALTER TABLE skus ADD COLUMN substitutes TEXT;
ALTER TABLE order_lines ADD COLUMN original_sku TEXT;
