"""Delivery promises: when nodes and carriers work, and the dates that follow."""
