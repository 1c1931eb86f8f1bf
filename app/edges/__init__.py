"""The edges: how the world reaches the service.

The HTTP API (one blueprint per resource), the console, the dispatcher that drains the
outbox and takes node events from brokers, and the ``dom`` command line.
"""
