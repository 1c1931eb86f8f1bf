"""Differences between two ruleset versions: rules added, removed, changed; settings changed."""

from __future__ import annotations


def diff(old: dict, new: dict) -> dict:
    """Return what changed from ``old`` to ``new``, rule by rule and field by field."""
    old_rules = {rule["id"]: rule for rule in old["rules"]}
    new_rules = {rule["id"]: rule for rule in new["rules"]}
    changed = []
    for rule_id in sorted(old_rules.keys() & new_rules.keys()):
        fields = _changes(old_rules[rule_id], new_rules[rule_id])
        if fields:
            changed.append({"id": rule_id, "fields": fields})
    return {
        "from": old["version"],
        "to": new["version"],
        "rules": {
            "added": sorted(new_rules.keys() - old_rules.keys()),
            "removed": sorted(old_rules.keys() - new_rules.keys()),
            "changed": changed,
        },
        "settings": _changes(old.get("settings", {}), new.get("settings", {})),
        "description": None
        if old.get("description") == new.get("description")
        else {"from": old.get("description"), "to": new.get("description")},
    }


def _changes(old: dict, new: dict, prefix: str = "") -> dict:
    """Flatten nested objects to dotted paths and report each differing leaf."""
    found = {}
    for key in sorted(old.keys() | new.keys()):
        path = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            found.update(_changes(before, after, f"{path}."))
        elif before != after:
            found[path] = {"from": before, "to": after}
    return found
