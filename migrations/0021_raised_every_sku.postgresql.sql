ALTER TABLE atp_raised DROP CONSTRAINT IF EXISTS atp_raised_sku_fkey;
