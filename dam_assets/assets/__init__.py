"""Thin Dagster assets: look up each partition's file, call media/, write tables."""

import warnings

from dagster import BetaWarning

# BackfillPolicy is what lets one run process a batch of partitions; it is a deliberate choice,
# so its beta notice should not greet every `dagster dev`.
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=BetaWarning)
