"""The dom command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from app.edges import demo
from app.edges.cli import main
from app.platform import auth
from app.platform import db as database


def commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in commands(main)], ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def readme_section(title: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = text.index(title)
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize(
    "path",
    [p for p, c in commands(main) if not isinstance(c, click.Group)],
    ids=" ".join,
)
def test_every_command_and_option_is_in_the_readme_and_has_help(path):
    table = readme_section("## The `dom` command")
    assert f"`dom {' '.join(path)}" in table, f"dom {' '.join(path)} is not in the README's table"
    command = main
    for name in path:
        command = command.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"dom {' '.join(path)} {param.opts[0]} has no help text"


@pytest.fixture
def env(app, db_path, monkeypatch):
    """A migrated database (the app made it) that the commands are pointed at."""
    monkeypatch.setenv("DOM_DATABASE", db_path)
    return db_path


def test_commands_say_which_database_and_never_create_one(tmp_path, monkeypatch, env):
    result = CliRunner().invoke(main, ["keys", "list"])
    assert result.exit_code == 0
    assert "database: " in result.output
    elsewhere = tmp_path / "elsewhere" / "dom.db"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("DOM_DATABASE", str(elsewhere))
    for command in (["keys", "list"], ["rules", "test"], ["db", "status"], ["dispatch"]):
        refused = CliRunner().invoke(main, command)
        assert refused.exit_code != 0, command
        assert "no database at" in refused.output and "dom db migrate" in refused.output
    assert not elsewhere.exists()
    # A ruleset file is tested as a draft: no database needed, none made.
    tested = CliRunner().invoke(main, ["rules", "test", "rulesets/sourcing/ruleset.json"])
    assert tested.exit_code == 0, tested.output
    assert " passed, 0 failed" in tested.output
    assert not elsewhere.exists()


def test_migrate_then_up_to_date(empty_database, monkeypatch):
    monkeypatch.setenv("DOM_DATABASE", empty_database)
    runner = CliRunner()
    output = runner.invoke(main, ["db", "migrate"]).output
    assert "applied 0001_init" in output
    assert "applied 0002_rulesets" in output
    assert "up to date" in runner.invoke(main, ["db", "migrate"]).output


def test_keys_create_prints_the_key_last(env):
    unbound = CliRunner().invoke(main, ["keys", "create", "--role", "channel"])
    assert unbound.exit_code != 0 and "--channel" in unbound.output
    result = CliRunner().invoke(
        main, ["keys", "create", "--role", "channel", "--channel", "web", "--channel", "app"]
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    connection = database.open_database(env)
    principal = auth.authenticate(connection, f"Bearer {key}")
    assert (principal.role, principal.channels) == ("channel", ("app", "web"))


def test_keys_are_listed_without_the_key_and_revoked_by_prefix(env):
    runner = CliRunner()
    key = runner.invoke(main, ["keys", "create", "--role", "analyst", "--label", "ann"])
    key = key.output.strip().splitlines()[-1]
    listed = runner.invoke(main, ["keys", "list"]).output
    assert key[:12] in listed and key not in listed and "ann" in listed
    assert runner.invoke(main, ["keys", "revoke", key[:6]]).exit_code != 0  # too short to find
    revoked = runner.invoke(main, ["keys", "revoke", key[:12]])
    assert revoked.exit_code == 0, revoked.output
    connection = database.open_database(env)
    with pytest.raises(auth.Unauthorized):
        auth.authenticate(connection, f"Bearer {key}")
    assert "revoked" in runner.invoke(main, ["keys", "list"]).output


def test_node_key_needs_an_existing_node(env):
    result = CliRunner().invoke(main, ["keys", "create", "--role", "node", "--node", "NOPE"])
    assert result.exit_code != 0
    assert "does not exist" in result.output
    result = CliRunner().invoke(main, ["keys", "create", "--role", "node"])
    assert result.exit_code != 0


@pytest.mark.slow
def test_demo_load_is_deterministic_and_idempotent(env, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "load", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "50 nodes, 500 skus" in result.output
    assert "demo-admin-key" in result.output
    again = runner.invoke(main, ["demo", "load", "--if-empty"])
    assert "not loaded" in again.output
    connection = database.open_database(env)
    counts = {
        table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in (
            "nodes",
            "skus",
            "stock",
            "customers",
            "api_keys",
            "carrier_services",
            "suppliers",
            "demand",
            "orders",
            "returns",
        )
    }
    assert counts["nodes"] == 50
    assert counts["customers"] == 300
    assert counts["api_keys"] == len(demo.DEMO_KEYS)
    assert counts["carrier_services"] == 5
    assert counts["suppliers"] == 5
    assert counts["demand"] > 50_000  # four weeks of sales at stores and DCs
    # A few days of orders, decided by the shipped rulesets: most delivered, some returned.
    assert "order history: 40 orders" in result.output
    assert (counts["orders"], counts["returns"]) == (demo.HISTORY_ORDERS, demo.HISTORY_RETURNS)
    statuses = dict(
        connection.execute("SELECT status, COUNT(*) FROM shipments GROUP BY status").fetchall()
    )
    assert {"accepted", "shipped", "delivered"} <= set(statuses)
    assert statuses["delivered"] > sum(statuses.values()) / 2
    moment = datetime(2026, 11, 25, tzinfo=UTC)
    assert demo.network(7, moment) == demo.network(7, moment)
    assert demo.history_orders(7) == demo.history_orders(7)
    types = dict(connection.execute("SELECT type, COUNT(*) FROM nodes GROUP BY type").fetchall())
    assert types == {"dc": 3, "3pl": 1, "supplier": 6, "store": 40}


def test_rules_validate_reports_problems(env, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["rules", "validate", "rulesets/sourcing/ruleset.json"])
    assert ok.exit_code == 0, ok.output
    assert "valid (30 rules)" in ok.output
    document = json.loads(Path("rulesets/sourcing/ruleset.json").read_text())
    document["rules"][0]["when"][0]["where"]["node_typ"] = {"eq": "store"}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    result = runner.invoke(main, ["rules", "validate", str(broken)])
    assert result.exit_code == 1
    assert "/rules/0/when/0/where/node_typ [protect-store-stock]" in result.output
    assert "did you mean 'node_type'" in result.output


def test_rules_test_prints_a_table(env):
    result = CliRunner().invoke(main, ["rules", "test", "sourcing"])
    assert result.exit_code == 0, result.output
    assert "pass  protect-store-stock" in result.output
    assert "30 passed, 0 failed" in result.output


def test_rules_load_reports_what_it_stored(env):
    result = CliRunner().invoke(main, ["rules", "load"])
    assert result.exit_code == 0, result.output
    assert "sourcing version 1" in result.output


def test_the_cli_does_what_the_api_does_for_an_analyst(env, tmp_path, monkeypatch):
    from tests.rules_helpers import shipped

    monkeypatch.setenv("DOM_AUTHOR", "Priya Shah")
    runner = CliRunner()
    two = shipped(version=2, description="v2")
    two["change_note"] = "one box per order"
    two["settings"]["max_shipments"] = 1
    connection = database.open_database(env)
    from app.machinery.rules import runtime
    from app.platform.schemas import catalogue

    runtime.store_version(connection, two, catalogue("schemas"), "test", "Priya Shah")
    connection.close()
    listed = runner.invoke(main, ["rules", "versions", "sourcing"])
    assert listed.exit_code == 0, listed.output
    assert "* v1" in listed.output and "one box per order" in listed.output
    changed = runner.invoke(main, ["rules", "diff", "sourcing", "1", "2"])
    assert '"max_shipments"' in changed.output
    activated = runner.invoke(main, ["rules", "activate", "sourcing", "2"])
    assert activated.exit_code == 0, activated.output
    assert "sourcing v2 effective" in activated.output
    assert "* v2" in runner.invoke(main, ["rules", "versions", "sourcing"]).output
    assert "rolled back to v1" in runner.invoke(main, ["rules", "rollback", "sourcing"]).output
    missing = runner.invoke(main, ["rules", "activate", "sourcing", "9"])
    assert missing.exit_code == 1 and "has no version 9" in missing.output
    experiment = tmp_path / "ab.json"
    experiment.write_text(
        json.dumps(
            {
                "experiment_id": "ab1",
                "ruleset": "sourcing",
                "champion": 1,
                "challenger": 2,
                "mode": "split",
                "challenger_share": 0.5,
            }
        )
    )
    started = runner.invoke(main, ["experiments", "start", str(experiment)])
    assert started.exit_code == 0, started.output
    assert "ab1 running" in started.output
    stopped = runner.invoke(main, ["experiments", "stop", "ab1", "--reason", "enough"])
    assert "ab1 stopped" in stopped.output
    again = runner.invoke(main, ["experiments", "promote", "ab1"])
    assert again.exit_code == 1  # a stopped experiment cannot be promoted
    shown = runner.invoke(main, ["replays", "show", "rpl_nope"])
    assert shown.exit_code == 1 and "does not exist" in shown.output


def test_the_demo_history_is_made_of_valid_orders():
    from app.platform.schemas import catalogue

    schemas = catalogue(Path(__file__).resolve().parent.parent / "schemas")
    bodies = demo.history_orders(7)
    assert len({body["order_id"] for body in bodies}) == demo.HISTORY_ORDERS
    for body in bodies:
        schemas.validate("order", body)
