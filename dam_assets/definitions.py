"""The code location: Dagster's own loader over `defs/` (one folder per domain, declared in
pyproject's `[tool.dg]`), so `dg check defs` and `dagster definitions validate` see what the
UI sees. Nothing in `defs/` imports this module or the CLI."""

from pathlib import Path

from dagster import load_from_defs_folder

defs = load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
