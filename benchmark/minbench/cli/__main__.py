"""``python -m minbench.cli``: the ``minbench`` command."""

import sys

from minbench.cli import main

sys.exit(main())
