"""Promises kept: by channel, node and week, the share of shipments delivered by the end
of their promised window, and how late the others were. Pure."""

from __future__ import annotations

from datetime import date, datetime

GROUPS = ("channel", "node", "week")
# Shipments that will never be delivered do not count for or against a promise.
NOT_COUNTED = ("cancelled", "rejected")


def week_of(day: str) -> str:
    """The ISO week of a day: ``2026-W48``."""
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def summarise(outcomes: list[dict], group_by: tuple[str, ...], now: datetime) -> list[dict]:
    """One row per group: shipments promised, delivered, kept (delivered by the window's
    end), overdue (not delivered, the window past), the share kept of those decided
    either way, and the mean lateness in days of the delivered ones (0 for those on time)."""
    groups: dict[tuple, dict] = {}
    for outcome in outcomes:
        if outcome["status"] in NOT_COUNTED:
            continue
        key_fields = {
            "channel": outcome["channel"],
            "node": outcome["node_id"],
            "week": week_of(outcome["promised_date"]),
        }
        key = tuple(key_fields[name] for name in group_by)
        row = groups.setdefault(
            key,
            {
                **{("node_id" if name == "node" else name): key_fields[name] for name in group_by},
                "promised": 0,
                "delivered": 0,
                "kept": 0,
                "overdue": 0,
                "_lateness": [],
            },
        )
        row["promised"] += 1
        until = datetime.fromisoformat(outcome["promised_until"])
        if outcome["delivered_at"]:
            delivered = datetime.fromisoformat(outcome["delivered_at"])
            row["delivered"] += 1
            late = max(0.0, (delivered - until).total_seconds() / 86400)
            row["kept"] += late == 0
            row["_lateness"].append(late)
        elif now > until:
            row["overdue"] += 1
    result = []
    for key in sorted(groups):
        row = groups[key]
        lateness = row.pop("_lateness")
        decided = row["delivered"] + row["overdue"]
        row["kept_share"] = round(row["kept"] / decided, 4) if decided else None
        row["mean_lateness_days"] = round(sum(lateness) / len(lateness), 3) if lateness else None
        result.append(row)
    return result
