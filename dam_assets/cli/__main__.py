"""`python -m dam_assets.cli` = `dam`."""

import sys

from . import main

sys.exit(main())
