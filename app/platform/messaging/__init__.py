"""Outgoing messages: the outbox every layer writes to, and the transports that carry it.

Signed HTTP webhooks, RabbitMQ and NATS, with circuit breakers per endpoint. The
dispatcher that drains the outbox is an edge (``app.edges.dispatch``).
"""
