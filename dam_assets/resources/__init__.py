"""Dagster resources: configuration people set in the UI or by environment, resolved lazily."""

from .discovery import MediaDiscovery
from .storage import DamStorage

__all__ = ["DamStorage", "MediaDiscovery"]
