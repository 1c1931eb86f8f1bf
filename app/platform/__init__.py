"""The platform: what any service needs and no order knows about.

The database and its migrations, settings, errors, logs, metrics, telemetry, API keys,
secrets, serving, backups, JSON Schemas, and outgoing messages (the outbox and its
transports). Imports nothing else of the application.
"""
