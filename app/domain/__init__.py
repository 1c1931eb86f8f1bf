"""The domain: the retailer's network, its customers, its orders and their shipments.

Each module owns its tables and answers in plain data; none decides anything by rules.
Imports only the platform.
"""
