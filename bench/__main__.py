"""Run every benchmark: python -m bench."""

from __future__ import annotations

import platform
import sys

from bench import (
    allocation,
    decisions,
    dispatch,
    engines,
    experiments,
    inventory,
    memory,
    promises,
    replenishment,
    returns,
    rules,
    scaling,
)


def main() -> None:
    print(f"DOM benchmarks on Python {platform.python_version()}, {platform.machine()}")
    rules.main()
    engines.main()
    inventory.main()
    allocation.main()
    decisions.main()
    promises.main()
    returns.main()
    replenishment.main()
    dispatch.main()
    experiments.main()
    scaling.main()
    memory.main()


if __name__ == "__main__":
    sys.exit(main())
