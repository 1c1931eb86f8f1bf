"""A/B experiments between two versions of a ruleset, on live orders.
Owns ``experiments`` and ``shadow_decisions``.

Assignment is a hash of the experiment id and the order's (or customer's) id, so
it is the same in every process and after restarts. In split mode the assigned
version decides for real; in shadow mode the champion decides and the challenger
is evaluated on the very same facts and only recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter

from app.domain import shipments
from app.machinery import decisions, metrics
from app.machinery.rules import kinds, registry, runtime
from app.platform import db as database
from app.platform import jsontext, logs, monitoring
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, NotFound, field_error
from app.platform.schemas import Catalogue

log = logging.getLogger(__name__)


def assign(experiment_id: str, key: str, challenger_share: float) -> str:
    """``champion`` or ``challenger``: deterministic, sticky, in proportion to the share."""
    digest = hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "challenger" if position < challenger_share else "champion"


def _public(row) -> dict:
    experiment = dict(row)
    experiment["guardrails"] = jsontext.loads(experiment["guardrails"])
    return experiment


def get(db: Database, experiment_id: str) -> dict:
    row = db.execute(
        "SELECT * FROM experiments WHERE experiment_id = ?", [experiment_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"experiment {experiment_id!r} does not exist")
    return _public(row)


def list_all(db: Database) -> list[dict]:
    return [_public(r) for r in db.execute("SELECT * FROM experiments ORDER BY created_at")]


def running(db: Database, ruleset: str, now: str | None = None) -> dict | None:
    """The experiment in force for a ruleset now, if any."""
    now = now or database.now()
    row = db.execute(
        "SELECT * FROM experiments WHERE ruleset = ? AND status = 'running' AND starts_at <= ?"
        " AND (ends_at IS NULL OR ends_at > ?) ORDER BY created_at LIMIT 1",
        [ruleset, now, now],
    ).fetchone()
    return _public(row) if row else None


def choose(db: Database, ruleset: str, keys: dict) -> tuple[dict, dict | None]:
    """The version that decides now: the active one, or a running experiment's variant,
    assigned by the experiment's ``assign_by`` key (an order id or customer id in ``keys``).
    Shadow mode: the champion decides."""
    experiment = running(db, ruleset)
    if experiment is None:
        return runtime.active_version(db, ruleset), None
    if experiment["mode"] == "shadow":
        variant = "champion"
    else:
        variant = assign(
            experiment["experiment_id"],
            keys[experiment["assign_by"]],
            experiment["challenger_share"],
        )
    version = registry.get(db, ruleset, experiment[variant])
    return version, {
        "experiment_id": experiment["experiment_id"],
        "variant": variant,
        "mode": experiment["mode"],
    }


def create(db: Database, schemas: Catalogue, document: dict, by: str) -> dict:
    """Start an experiment once both versions exist and pass their ruleset's scenarios."""
    name = document["ruleset"]
    if document["champion"] == document["challenger"]:
        raise InvalidInput([field_error(("challenger",), "must differ from the champion")])
    for role in ("champion", "challenger"):
        try:
            version = registry.get(db, name, document[role])
        except NotFound as exc:
            raise InvalidInput([field_error((role,), exc.message)]) from exc
        runtime.require_passing(db, version, schemas, f"the experiment's {role}")
    starts = (
        database.normalize_time(document["starts_at"])
        if document.get("starts_at")
        else (database.now())
    )
    ends = database.normalize_time(document["ends_at"]) if document.get("ends_at") else None
    with database.immediate(db):
        # One running experiment per ruleset: creations for a ruleset take turns.
        db.wait_job_lock(f"ruleset {document['ruleset']}")
        if db.execute(
            "SELECT 1 FROM experiments WHERE experiment_id = ?", [document["experiment_id"]]
        ).fetchone():
            raise Conflict(
                f"experiment {document['experiment_id']!r} exists", code="experiment_exists"
            )
        if db.execute(
            "SELECT 1 FROM experiments WHERE ruleset = ? AND status = 'running'", [name]
        ).fetchone():
            raise Conflict(
                f"ruleset {name!r} already has a running experiment", code="experiment_running"
            )
        db.execute(
            "INSERT INTO experiments (experiment_id, ruleset, champion, challenger, mode,"
            " challenger_share, assign_by, starts_at, ends_at, guardrails, status, created_by,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,'running',?,?)",
            [
                document["experiment_id"],
                name,
                document["champion"],
                document["challenger"],
                document["mode"],
                document.get("challenger_share", 0.5),
                document.get("assign_by", "order_id"),
                starts,
                ends,
                json.dumps(document.get("guardrails", {})),
                by,
                database.now(),
            ],
        )
    logs.touch(experiment_id=document["experiment_id"])
    logs.event(
        "experiment.started",
        experiment_id=document["experiment_id"],
        ruleset=name,
        champion=document["champion"],
        challenger=document["challenger"],
        mode=document["mode"],
        challenger_share=document.get("challenger_share", 0.5),
        by=by,
    )
    return get(db, document["experiment_id"])


def stop(db: Database, experiment_id: str, reason: str, status: str = "stopped") -> dict:
    with database.immediate(db):
        experiment = get(db, experiment_id)
        if experiment["status"] != "running":
            raise Conflict(
                f"experiment {experiment_id!r} is {experiment['status']}",
                code="experiment_not_running",
            )
        db.execute(
            "UPDATE experiments SET status = ?, stop_reason = ?, stopped_at = ?"
            " WHERE experiment_id = ?",
            [status, reason, database.now(), experiment_id],
        )
    why = (
        "promoted" if status == "promoted" else "guardrail" if _by_guardrail(reason) else "stopped"
    )
    monitoring.EXPERIMENT_STOPS.labels(why).inc()
    logs.touch(experiment_id=experiment_id)
    logs.event(
        "experiment.stopped", experiment_id=experiment_id, status=status, why=why, reason=reason
    )
    return get(db, experiment_id)


def _by_guardrail(reason: str | None) -> bool:
    return (reason or "").startswith("guardrail")


def promote(db: Database, schemas: Catalogue, experiment_id: str, by: str) -> dict:
    """Activate the challenger and end the experiment."""
    experiment = get(db, experiment_id)
    if experiment["status"] != "running":
        raise Conflict(
            f"experiment {experiment_id!r} is {experiment['status']}", code="experiment_not_running"
        )
    activation = runtime.activate(db, schemas, experiment["ruleset"], experiment["challenger"], by)
    ended = stop(db, experiment_id, f"challenger promoted by {by}", status="promoted")
    return {**ended, "activation": activation}


# Shadow decisions ----------------------------------------------------------------------


def compare(champion: dict, challenger: dict) -> tuple[bool, dict]:
    """Do two decisions of one order agree: same nodes per line, same service, same status?"""

    def placement(decision):
        return sorted(
            (line["line_id"], s["node_id"], line["qty"])
            for s in decision["shipments"]
            for line in s["lines"]
        )

    cost = sum(s["estimated_cost"] for s in challenger["shipments"]) - sum(
        s["estimated_cost"] for s in champion["shipments"]
    )
    same_nodes = placement(champion) == placement(challenger)
    same_service = champion.get("service_level") == challenger.get("service_level")
    same_status = champion["status"] == challenger["status"]
    fired_a = set(champion["explanation"]["rules_fired"])
    fired_b = set(challenger["explanation"]["rules_fired"])
    nodes_a = {s["node_id"] for s in champion["shipments"]}
    nodes_b = {s["node_id"] for s in challenger["shipments"]}
    difference = {
        "same_nodes": same_nodes,
        "same_service": same_service,
        "same_status": same_status,
        "cost_difference": round(cost, 4),
        "rules_only_champion": sorted(fired_a - fired_b),
        "rules_only_challenger": sorted(fired_b - fired_a),
        "nodes_only_champion": sorted(nodes_a - nodes_b),
        "nodes_only_challenger": sorted(nodes_b - nodes_a),
    }
    return same_nodes and same_service and same_status, difference


def record_shadow(
    db, decision_id: str, experiment_id: str, champion: dict, challenger: dict
) -> None:
    agrees, difference = compare(champion, challenger)
    with database.atomic(db):
        db.execute(
            "INSERT INTO shadow_decisions (decision_id, experiment_id, result, agrees,"
            " difference, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id)"
            " DO UPDATE SET experiment_id = excluded.experiment_id, result = excluded.result,"
            " agrees = excluded.agrees, difference = excluded.difference,"
            " created_at = excluded.created_at",
            [
                decision_id,
                experiment_id,
                jsontext.dumps(challenger),
                int(agrees),
                jsontext.dumps(difference),
                database.now(),
            ],
        )


def shadows(db, experiment_id: str) -> dict[str, dict]:
    rows = db.execute(
        "SELECT decision_id, result, agrees, difference FROM shadow_decisions"
        " WHERE experiment_id = ?",
        [experiment_id],
    )
    return {
        row[0]: {
            "result": jsontext.loads(row[1]),
            "agrees": bool(row[2]),
            "difference": jsontext.loads(row[3]),
        }
        for row in rows
    }


# Reports -------------------------------------------------------------------------------


def report(db: Database, experiment_id: str) -> dict:
    experiment = get(db, experiment_id)
    champion_version = registry.get(db, experiment["ruleset"], experiment["champion"])
    of_kind = kinds.of(champion_version["document"])
    kind = of_kind.name
    real = decisions.for_experiment(db, experiment_id)
    # What happened since (a return's goods sold again, its refund paid), where the kind
    # observes it: measured on the real decisions only.
    observed = of_kind.observe(db, [r["decision_id"] for r in real])
    for record in real:
        record["result"] = {**record["result"], **observed.get(record["decision_id"], {})}
    if experiment["mode"] == "split":
        by_variant = {"champion": [], "challenger": []}
        for record in real:
            by_variant[record["variant"]].append(record["result"])
        rows = {k: [metrics.measures(d) for d in v] for k, v in by_variant.items()}
        ids = {v: [r["decision_id"] for r in real if r["variant"] == v] for v in rows}
        variants = {
            variant: metrics.summary(
                rows[variant], shipments.rejection_counts(db, ids[variant]), kind
            )
            for variant in rows
        }
        diff = metrics.differences(rows["champion"], rows["challenger"], kind)
        extra = {}
    else:
        shadow = shadows(db, experiment_id)
        pairs = [
            (r["result"], shadow[r["decision_id"]]["result"])
            for r in real
            if r["decision_id"] in shadow
        ]
        champion_rows = [metrics.measures(a) for a, _ in pairs]
        challenger_rows = [metrics.measures(b) for _, b in pairs]
        variants = {
            "champion": metrics.summary(
                champion_rows,
                shipments.rejection_counts(db, [r["decision_id"] for r in real]),
                kind,
            ),
            "challenger": metrics.summary(challenger_rows, kind=kind),
        }
        diff = metrics.paired_differences(champion_rows, challenger_rows, kind)
        compared = [(r, shadow[r["decision_id"]]) for r in real if r["decision_id"] in shadow]
        # Only orders on which the variants disagreed say what makes the difference.
        disagreeing = [(r, s) for r, s in compared if not s["agrees"]]
        rules = Counter(
            rule
            for _, s in disagreeing
            for rule in s["difference"]["rules_only_champion"]
            + s["difference"]["rules_only_challenger"]
        )
        extra = {
            "disagreement_rate": len(disagreeing) / len(compared) if compared else None,
            "disagreements": len(disagreeing),
            "rules_making_the_difference": rules.most_common(10),
            "nodes_making_the_difference": node_changes(
                [(r["result"], s["result"]) for r, s in disagreeing]
            )[:10],
        }
    return {
        "experiment": experiment,
        "variants": variants,
        "challenger_minus_champion": diff,
        **extra,
    }


def node_changes(pairs: list[tuple[dict, dict]]) -> list[dict]:
    """Per node, the lines the challenger sends it that the champion did not (gained) and
    the other way round (lost), most changed first."""
    gained: Counter = Counter()
    lost: Counter = Counter()
    for champion, challenger in pairs:
        before = {
            (line["line_id"], s["node_id"]) for s in champion["shipments"] for line in s["lines"]
        }
        after = {
            (line["line_id"], s["node_id"]) for s in challenger["shipments"] for line in s["lines"]
        }
        gained.update(node for _, node in after - before)
        lost.update(node for _, node in before - after)
    nodes = set(gained) | set(lost)
    return sorted(
        (
            {"node_id": node, "lines_gained": gained[node], "lines_lost": lost[node]}
            for node in nodes
        ),
        key=lambda n: (-(n["lines_gained"] + n["lines_lost"]), n["node_id"]),
    )


def disagreements(db: Database, experiment_id: str, after: tuple | None, limit: int) -> list:
    """Shadow-mode orders on which the variants disagreed, newest first (a list page)."""
    get(db, experiment_id)
    where, params = "", [experiment_id]
    if after is not None:
        where = " AND (s.created_at < ? OR (s.created_at = ? AND s.decision_id < ?))"
        params += [after[0], after[0], after[1]]
    rows = db.execute(
        "SELECT s.decision_id, d.order_id, s.difference, s.created_at FROM shadow_decisions s"
        " JOIN decisions d ON d.decision_id = s.decision_id"
        f" WHERE s.experiment_id = ? AND s.agrees = 0{where}"
        " ORDER BY s.created_at DESC, s.decision_id DESC LIMIT ?",
        [*params, limit],
    )
    return [{**dict(row), "difference": jsontext.loads(row["difference"])} for row in rows]


def side_by_side(db: Database, experiment_id: str, decision_id: str) -> dict:
    """One order under both variants of a shadow experiment: what each decided, and how."""
    row = db.execute(
        "SELECT s.result, s.agrees, s.difference, d.result AS champion FROM shadow_decisions s"
        " JOIN decisions d ON d.decision_id = s.decision_id"
        " WHERE s.experiment_id = ? AND s.decision_id = ?",
        [experiment_id, decision_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"experiment {experiment_id!r} has no shadow decision {decision_id!r}")
    return {
        "decision_id": decision_id,
        "agrees": bool(row["agrees"]),
        "difference": jsontext.loads(row["difference"]),
        "champion": jsontext.loads(row["champion"]),
        "challenger": jsontext.loads(row["result"]),
    }


def check_guardrails(db: Database, experiment_id: str) -> str | None:
    """Stop the experiment when a guardrail is crossed with enough evidence; return why."""
    experiment = get(db, experiment_id)
    rails = experiment["guardrails"]
    if experiment["status"] != "running" or not rails:
        return None
    result = report(db, experiment_id)
    minimum = rails.get("min_decisions", 100)
    if min(v["decisions"] for v in result["variants"].values()) < minimum:
        return None
    reasons = []
    found = result["challenger_minus_champion"]
    # Sourcing has a fill rate and a cost per order; returns a cost per return;
    # replenishment a landed cost per unit.
    fill = found.get("fill_rate")
    limit = rails.get("max_fill_rate_drop")
    if limit is not None and fill and fill["ci95"] and fill["ci95"][1] < -limit:
        reasons.append(f"fill rate fell by {-fill['difference']:.3f} (more than {limit})")
    measure = next(name for name in metrics.COSTS if name in found)
    cost = found[measure]
    limit = rails.get("max_cost_increase")
    base = result["variants"]["champion"][measure]
    if limit is not None and cost["ci95"] and base and cost["ci95"][0] > limit * base:
        what = measure.replace("_", " ")
        reasons.append(f"{what} rose by {cost['difference'] / base:.1%} (more than {limit:.0%})")
    if not reasons:
        return None
    reason = "guardrail: " + "; ".join(reasons)
    stop(db, experiment_id, reason)
    logs.event(
        "experiment.guardrail_stopped",
        logging.WARNING,
        experiment_id=experiment_id,
        reason=reason,
        decisions={name: v["decisions"] for name, v in result["variants"].items()},
        fill_rate_difference=fill["difference"],
        fill_rate_ci95=fill["ci95"],
        cost_per_order_difference=cost["difference"],
        cost_per_order_ci95=cost["ci95"],
        guardrails=rails,
    )
    return reason
