-- Least privilege: channel keys bound to their channels, keys findable by a prefix, feed ids
-- per node.

ALTER TABLE api_keys ADD COLUMN channels TEXT;      -- JSON array: the channels a channel key serves
ALTER TABLE api_keys ADD COLUMN key_prefix TEXT;    -- the key's first characters, to find it by
CREATE INDEX api_keys_prefix ON api_keys (key_prefix);

-- A feed id is the node's own: another node may use the same id without colliding or learning
-- that it exists.
CREATE TABLE feeds_by_node (
    node_id TEXT NOT NULL REFERENCES nodes (node_id),
    feed_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    as_of TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    result TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (node_id, feed_id)
);
INSERT INTO feeds_by_node (node_id, feed_id, mode, as_of, body_hash, result, received_at)
    SELECT node_id, feed_id, mode, as_of, body_hash, result, received_at FROM feeds;
DROP TABLE feeds;
ALTER TABLE feeds_by_node RENAME TO feeds;
CREATE INDEX feeds_node ON feeds (node_id, as_of);
