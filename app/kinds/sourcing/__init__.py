"""Sourcing decisions: facts, rules, allocation, reservations and explanations."""
