-- Message brokers beside webhooks: where a node's or a subscription's messages go when
-- it is not a webhook (JSON: {"kind": "amqp", "exchange": ..., "routing_key": ...} or
-- {"kind": "nats", "stream": ..., "subject": ...}); NULL is a webhook. The broker URLs and
-- credentials are settings, never stored here.

ALTER TABLE nodes ADD COLUMN transport TEXT;
ALTER TABLE subscriptions ADD COLUMN transport TEXT;

-- Node events received over a broker that could not be applied, with their error: the
-- broker's dead-letter queue holds them too; this is what the API shows.
CREATE TABLE node_event_failures (
    failure_id TEXT PRIMARY KEY,
    transport TEXT NOT NULL,
    node_id TEXT,
    shipment_id TEXT,
    message_id TEXT,
    error TEXT NOT NULL,              -- the error body (JSON), as POST /v1/shipments/{id}/events answers
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX node_event_failures_created ON node_event_failures (created_at, failure_id);
