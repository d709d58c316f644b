"""`make demo` (python -m dam_assets.demo)."""

import sys

from . import run

sys.exit(run())
