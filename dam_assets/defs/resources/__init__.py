"""Dagster resources: configuration people set in the UI or by environment, resolved lazily."""

from .discovery import MediaDiscovery
from .models import ClipConfig, FaceConfig, SceneDetectionConfig, WhisperConfig
from .storage import DamStorage

__all__ = [
    "ClipConfig",
    "DamStorage",
    "FaceConfig",
    "MediaDiscovery",
    "SceneDetectionConfig",
    "WhisperConfig",
]
