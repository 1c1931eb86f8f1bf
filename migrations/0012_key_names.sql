-- The person a key belongs to: versions, activations and experiments record their name.
ALTER TABLE api_keys ADD COLUMN name TEXT;
