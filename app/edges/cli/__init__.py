"""The ``dom`` command: serve, migrate, load the demo, manage API keys, rulesets,
experiments, replays, open orders and replenishment. One module per group of commands.

Every command reads the same settings as the service (``DOM_*`` variables).
"""

from __future__ import annotations

import sys

import click

from app.edges.cli import access, database, experiments, orders, replenish, rules, serving


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """DOM: distributed order management decision service.

    \b
    Example:
        dom db migrate && dom demo load --if-empty && dom serve
    """


main.add_command(access.secrets)
main.add_command(access.keys)
main.add_command(database.db)
main.add_command(database.demo)
main.add_command(experiments.decisions_group)
main.add_command(experiments.experiments_group)
main.add_command(experiments.replays_group)
main.add_command(experiments.replay_command)
main.add_command(orders.orders_group)
main.add_command(replenish.replenish_group)
main.add_command(rules.rules)
main.add_command(serving.serve)
main.add_command(serving.dispatch)
main.add_command(serving.show_settings)


if __name__ == "__main__":
    sys.exit(main())
