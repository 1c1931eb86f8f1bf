"""Comparing versions: ``dom decisions replay``, ``dom experiments``, ``dom replays``
and ``dom replay``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from app.edges.cli.common import (
    api_errors,
    author,
    schemas,
    with_db,
)
from app.platform.errors import NotFound

log = logging.getLogger("dom.service")


@click.group("decisions")
def decisions_group():
    """Stored decisions.

    \b
    Example:
        dom decisions replay dec_3f2a9c01b7e4d2aa
    """


@decisions_group.command("replay")
@click.argument("decision_id")
@click.option("--version", "version_number", type=int, help="Ruleset version to replay under.")
@with_db
def decisions_replay(db, decision_id: str, version_number: int | None):
    """Re-decide a stored decision from the facts it saw; exit 1 if the outcome differs.

    \b
    Example:
        dom decisions replay dec_3f2a9c01b7e4d2aa --version 2
    """
    from app.machinery import decisions
    from app.machinery.rules import kinds, registry

    try:
        record = decisions.get(db, decision_id)
        original = record["decision"]
        number = version_number or original["ruleset"]["version"]
        version = registry.get(db, original["ruleset"]["name"], number)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    kind = kinds.of_decision(original)
    [replayed] = kind.replay_many([record], version)
    same = kind.reproduce(replayed) == kind.reproduce(original)
    click.echo(
        json.dumps(
            {"original": kind.reproduce(original), "replayed": kind.reproduce(replayed)}, indent=2
        )
    )
    click.echo(
        f"{decision_id} under {original['ruleset']['name']} version {number}: "
        + ("identical" if same else "different")
    )
    if not same:
        sys.exit(1)


@click.group("experiments")
def experiments_group():
    """A/B experiments between ruleset versions.

    \b
    Example:
        dom experiments report ab-2026-11
    """


@experiments_group.command("report")
@click.argument("experiment_id")
@with_db
def experiments_report(db, experiment_id: str):
    """Print an experiment's measures per variant and the difference with its 95% interval.

    \b
    Example:
        dom experiments report ab-2026-11
    """
    from app.machinery import experiments

    try:
        result = experiments.report(db, experiment_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    experiment = result["experiment"]
    click.echo(
        f"{experiment_id}: {experiment['ruleset']} v{experiment['champion']} (champion)"
        f" vs v{experiment['challenger']} (challenger), {experiment['mode']},"
        f" {experiment['status']}"
    )
    _comparison_table(
        result["variants"]["champion"],
        result["variants"]["challenger"],
        result["challenger_minus_champion"],
        ("champion", "challenger"),
    )
    if "disagreement_rate" in result and result["disagreement_rate"] is not None:
        click.echo(f"disagreement rate: {result['disagreement_rate']:.1%}")
        for rule, count in result["rules_making_the_difference"][:5]:
            click.echo(f"  rule {rule}: {count} of {result['disagreements']} disagreeing orders")
        for node in result["nodes_making_the_difference"][:5]:
            click.echo(
                f"  node {node['node_id']}: +{node['lines_gained']} lines, -{node['lines_lost']}"
            )


@experiments_group.command("start")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_db
@api_errors
def experiments_start(db, path: str):
    """Start an experiment described in a JSON file (schemas/experiment.schema.json).

    \b
    Example:
        dom experiments start ab-2026-11.json
    """
    from app.machinery import experiments

    document = json.loads(Path(path).read_text())
    schemas().validate("experiment", document)
    started = experiments.create(db, schemas(), document, author())
    click.echo(
        f"{started['experiment_id']} {started['status']}: v{started['champion']} (champion)"
        f" vs v{started['challenger']} (challenger), {started['mode']}"
    )


@experiments_group.command("stop")
@click.argument("experiment_id")
@click.option("--reason", default=None, help="Why it stops (recorded).")
@with_db
@api_errors
def experiments_stop(db, experiment_id: str, reason: str | None):
    """Stop a running experiment; the active version alone decides again.

    \b
    Example:
        dom experiments stop ab-2026-11 --reason "enough data"
    """
    from app.machinery import experiments

    stopped = experiments.stop(db, experiment_id, reason or f"stopped by {author()}")
    click.echo(f"{experiment_id} {stopped['status']}")


@experiments_group.command("promote")
@click.argument("experiment_id")
@with_db
@api_errors
def experiments_promote(db, experiment_id: str):
    """Stop an experiment and activate its challenger (once its scenarios pass).

    \b
    Example:
        dom experiments promote ab-2026-11
    """
    from app.machinery import experiments

    promoted = experiments.promote(db, schemas(), experiment_id, author())
    click.echo(f"{experiment_id} promoted: {json.dumps(promoted.get('activation', promoted))}")


def replay_options(command):
    """What a replay compares and on which decisions: the options of both replay commands."""
    for option in reversed(
        [
            click.option(
                "--ruleset",
                default="sourcing",
                show_default=True,
                help="The ruleset whose versions are compared (sourcing, returns, replenishment).",
            ),
            click.option(
                "--champion",
                "--a",
                "version_a",
                type=int,
                required=True,
                help="The baseline version.",
            ),
            click.option(
                "--challenger",
                "--b",
                "version_b",
                type=int,
                required=True,
                help="The version compared.",
            ),
            click.option("--from", "since", default=None, help="Decisions made at or after."),
            click.option("--to", "until", default=None, help="Decisions made before (RFC 3339)."),
            click.option("--channel", default=None, help="Only orders from this channel."),
            click.option("--limit", type=int, default=None, help="At most this many decisions."),
        ]
    ):
        command = option(command)
    return command


@click.group("replays")
def replays_group():
    """Replays: A/B on history, as background jobs or in the foreground.

    \b
    Example:
        dom replays start --champion 1 --challenger 2 --channel web
    """


@replays_group.command("start")
@replay_options
@click.pass_context
def replays_start(ctx, **options):
    """Replay stored decisions under two versions and print the comparison (same as `dom replay`).

    \b
    Example:
        dom replays start --champion 1 --challenger 2 --from 2026-11-01T00:00:00Z
    """
    ctx.invoke(replay_command, **options)


@replays_group.command("show")
@click.argument("replay_id")
@with_db
@api_errors
def replays_show(db, replay_id: str):
    """Show a replay: its progress, and its comparison when done.

    \b
    Example:
        dom replays show rpl_0123456789ab
    """
    from app.machinery import replays

    replay = replays.get(db, replay_id)
    click.echo(
        f"{replay_id}: {replay['status']}, {replay['done']} of {replay['total']} decisions"
        + (f" ({replay['error']})" if replay.get("error") else "")
    )
    report = replay.get("report")
    if report:
        request = replay["request"]
        names = (f"v{request['champion']}", f"v{request.get('challenger', 'draft')}")
        _comparison_table(
            report["champion"], report["challenger"], report["challenger_minus_champion"], names
        )
        click.echo(f"{report['changed']} of {replay['total']} decisions changed")


def _comparison_table(left: dict, right: dict, differences: dict, names: tuple) -> None:
    def show(value):
        return "-" if value is None else f"{value:,.3f}"

    from app.machinery.metrics import verdict

    click.echo(
        f"{'measure':<22}{names[0]:>12}{names[1]:>12}{'difference':>12}"
        f"  {'95% interval (always valid)':<28}verdict"
    )
    click.echo(f"{'decisions':<22}{left['decisions']:>12}{right['decisions']:>12}")
    for name in differences:  # the measures of the ruleset's kind
        diff = differences[name]
        interval = f"[{diff['ci95'][0]:,.3f}, {diff['ci95'][1]:,.3f}]" if diff["ci95"] else "-"
        said = diff.get("verdict") or verdict(name, diff)
        click.echo(
            f"{name:<22}{show(left[name]):>12}{show(right[name]):>12}"
            f"{show(diff['difference']):>12}  {interval:<28}{said}"
        )
    for share in ("p50", "p95"):
        latency = [side.get("latency_ms", {}).get(share) for side in (left, right)]
        if any(value is not None for value in latency):
            click.echo(
                f"{'latency ' + share + ' (ms)':<22}{show(latency[0]):>12}{show(latency[1]):>12}"
            )


@click.command("replay")
@replay_options
@with_db
def replay_command(db, ruleset, version_a, version_b, since, until, channel, limit):
    """Re-decide stored decisions under two versions and compare them (nothing is reserved).

    \b
    Example:
        dom replay --champion 1 --challenger 2 --from 2026-11-01T00:00:00Z --channel web
    """
    from app.machinery import replays

    request = {"ruleset": ruleset, "champion": version_a, "challenger": version_b}
    for name, value in (("from", since), ("to", until), ("channel", channel), ("limit", limit)):
        if value is not None:
            request[name] = value
    try:
        replay = replays.create(db, request, "cli")
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    with click.progressbar(length=replay["total"], label="replaying") as bar:

        def progress(done, total):
            bar.update(1)

        finished = replays.run(db, replay["replay_id"], progress)
    if finished["status"] != "done":
        raise click.ClickException(f"replay failed: {finished['error']}")
    report = finished["report"]
    _comparison_table(
        report["champion"],
        report["challenger"],
        report["challenger_minus_champion"],
        (f"v{version_a}", f"v{version_b}"),
    )
    click.echo(
        f"{report['changed']} of {finished['total']} decisions changed ({finished['replay_id']})"
    )
