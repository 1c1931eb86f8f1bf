"""Replenishment: a ruleset kind that decides what stores and DCs reorder, how much and
from where."""
