"""``python -m infrastructure.cli``: the ``parsec`` command (nodes spawned by tools and tests start this way)."""

import sys

from infrastructure.cli import main

sys.exit(main())
