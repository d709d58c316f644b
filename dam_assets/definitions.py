"""The code location: Dagster's own loader over `defs/` (one folder per domain), so `dg check
defs` and `dagster definitions validate` see what the UI sees. Nothing in `defs/` imports this
module or the CLI."""

from dagster import load_defs

from . import defs as defs_package

defs = load_defs(defs_root=defs_package)
