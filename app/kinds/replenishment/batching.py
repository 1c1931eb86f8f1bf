"""The replenishment rules on a run's facts: in batches of positions (a run can have
tens of thousands), several batches per exchange with the engine, merged into one
evaluation."""

from __future__ import annotations

from app.machinery.rules import runtime
from app.machinery.rules.budget import POSITIONS_PER_EVALUATION
from app.machinery.rules.engine import Evaluation

# Batches of positions evaluated per exchange with the engine (progress moves per exchange).
BATCHES_PER_EXCHANGE = 8


def evaluate(version: dict, found: list[dict], advance=None):
    """Evaluate a run's facts in batches of positions (each batch: the run, its positions
    and their sources), several batches per exchange with the engine; merged."""
    shared = [f for f in found if f["fact"] not in ("position", "source")]
    sources: dict[str, list[dict]] = {}
    for fact in found:
        if fact["fact"] == "source":
            sources.setdefault(fact["position_key"], []).append(fact)
    positions = [f for f in found if f["fact"] == "position"]
    batches = [
        [
            fact
            for position in positions[start : start + POSITIONS_PER_EVALUATION]
            for fact in (position, *sources.get(position["key"], ()))
        ]
        for start in range(0, max(len(positions), 1), POSITIONS_PER_EVALUATION)
    ]
    evaluations = []
    done = 0
    for start in range(0, len(batches), BATCHES_PER_EXCHANGE):
        chunk = [shared + batch for batch in batches[start : start + BATCHES_PER_EXCHANGE]]
        evaluations.extend(runtime.evaluate_many(version, chunk))
        done += sum(1 for batch in chunk for fact in batch if fact["fact"] == "position")
        if advance is not None:
            advance(done)
    return merge(evaluations)


def merge(evaluations: list[Evaluation]) -> Evaluation:
    """One evaluation of a run evaluated in batches of positions (their keys are distinct;
    decision attributes come from rules on the run, the same in every batch)."""
    merged = Evaluation()
    seen = set()
    for evaluation in evaluations:
        for rule_id in evaluation.fired:
            if rule_id not in seen:
                seen.add(rule_id)
                merged.fired.append(rule_id)
        merged.excluded.update(evaluation.excluded)
        merged.scores.update(evaluation.scores)
        merged.item_attributes.update(evaluation.item_attributes)
        for name, entry in evaluation.attributes.items():
            merged.attributes.setdefault(name, entry)
        merged.tags.extend(t for t in evaluation.tags if t not in merged.tags)
        merged.flags.extend(evaluation.flags)
    return merged
