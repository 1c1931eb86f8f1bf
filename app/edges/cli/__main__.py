"""``python -m app.edges.cli``: the ``dom`` command."""

import sys

from app.edges.cli import main

sys.exit(main())
