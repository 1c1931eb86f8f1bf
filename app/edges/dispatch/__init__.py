"""Instructing the nodes: the outbox of messages, and (later) their delivery."""
