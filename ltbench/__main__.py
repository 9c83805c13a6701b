"""``python -m ltbench``: the command line."""

import sys

from ltbench.cli import main

sys.exit(main())
