"""A/B comparisons: live experiments and replays of history."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from app.edges.api import listing
from app.edges.api.endpoints import endpoint, query_args, schemas
from app.machinery import experiments, replays
from app.machinery.rules import runtime
from app.platform.db import get_db

bp = Blueprint("experiments", __name__, url_prefix="/v1")
AUTHORS = ("admin", "analyst")


@endpoint(
    bp,
    "/experiments",
    "POST",
    summary="Start comparing two versions on live orders",
    roles=AUTHORS,
    body="experiment",
    responses={
        201: "Running",
        409: "Another experiment runs, or scenarios fail",
        422: "Invalid, or a version does not exist",
    },
)
def create_experiment(body: dict):
    return jsonify(experiments.create(get_db(), schemas(), body, g.principal.author)), 201


@endpoint(bp, "/experiments", "GET", summary="Experiments", roles=AUTHORS)
def list_experiments():
    return jsonify({"experiments": experiments.list_all(get_db())})


@endpoint(
    bp,
    "/experiments/<experiment_id>",
    "GET",
    summary="One experiment",
    roles=AUTHORS,
    responses={200: "The experiment", 404: "No such experiment"},
)
def get_experiment(experiment_id: str):
    return jsonify(experiments.get(get_db(), experiment_id))


@endpoint(
    bp,
    "/experiments/<experiment_id>/stop",
    "POST",
    summary="Stop an experiment",
    roles=AUTHORS,
    responses={200: "Stopped", 409: "Not running"},
)
def stop_experiment(experiment_id: str):
    return jsonify(experiments.stop(get_db(), experiment_id, f"stopped by {g.principal.author}"))


@endpoint(
    bp,
    "/experiments/<experiment_id>/promote",
    "POST",
    summary="Activate the challenger and end the experiment",
    roles=AUTHORS,
    responses={200: "Promoted", 409: "Not running, or the challenger's scenarios fail"},
)
def promote_experiment(experiment_id: str):
    return jsonify(experiments.promote(get_db(), schemas(), experiment_id, g.principal.author))


@endpoint(
    bp,
    "/experiments/<experiment_id>/report",
    "GET",
    summary="Each variant's measures and the challenger minus the champion, with 95% CIs",
    roles=AUTHORS,
    responses={200: "The report", 404: "No such experiment"},
)
def experiment_report(experiment_id: str):
    db = get_db()
    experiments.check_guardrails(db, experiment_id)
    return jsonify(experiments.report(db, experiment_id))


@endpoint(
    bp,
    "/replays",
    "POST",
    summary="Re-decide stored decisions under two versions (or a version and a draft)",
    roles=AUTHORS,
    body="replay-request",
    responses={
        202: "Started; poll GET /v1/replays/{id}",
        404: "No such version",
        422: "Invalid request or draft",
    },
)
def create_replay(body: dict):
    if "draft" in body:
        runtime.check_draft(body["draft"], schemas(), "/draft")
    db = get_db()
    replays.versions_for(db, body)  # 404 now rather than a failed job later
    replay = replays.create(db, body, g.principal.author)
    replays.start(current_app.config, replay["replay_id"])
    return jsonify(replay), 202


@endpoint(
    bp,
    "/experiments/<experiment_id>/disagreements",
    "GET",
    summary="Shadow mode: the orders on which champion and challenger disagreed, newest first",
    roles=AUTHORS,
    query=listing.PAGE_QUERY,
    responses={200: "A page of disagreements and the cursor of the next"},
)
def list_disagreements(experiment_id: str):
    args = query_args(listing.PAGE_QUERY)
    return listing.answer(
        "disagreements",
        "decision_id",
        lambda db, after, limit: experiments.disagreements(db, experiment_id, after, limit),
        args,
    )


@endpoint(
    bp,
    "/experiments/<experiment_id>/disagreements/<decision_id>",
    "GET",
    summary="One order under both variants, side by side",
    roles=AUTHORS,
    responses={200: "Champion and challenger decisions", 404: "No such shadow decision"},
)
def get_disagreement(experiment_id: str, decision_id: str):
    return jsonify(experiments.side_by_side(get_db(), experiment_id, decision_id))


@endpoint(
    bp,
    "/replays",
    "GET",
    summary="Replays, newest first, without their reports",
    roles=AUTHORS,
    query=listing.PAGE_QUERY,
    responses={200: "A page of replays and the cursor of the next"},
)
def list_replays():
    args = query_args(listing.PAGE_QUERY)
    return listing.answer("replays", "replay_id", replays.search, args)


@endpoint(
    bp,
    "/replays/<replay_id>",
    "GET",
    summary="A replay: progress, report, changed orders",
    roles=AUTHORS,
    responses={200: "The replay", 404: "No such replay"},
)
def get_replay(replay_id: str):
    return jsonify(replays.get(get_db(), replay_id))
