"""Dagster resources: configuration people set in the UI or by environment, resolved lazily."""

from .discovery import MediaDiscovery
from .models import SceneDetectionConfig, WhisperConfig
from .storage import DamStorage

__all__ = ["DamStorage", "MediaDiscovery", "SceneDetectionConfig", "WhisperConfig"]
