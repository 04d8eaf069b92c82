"""`python -m pgcat_py` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
