"""The resources every asset, sensor and schedule of the code location is given."""

from dagster import Definitions

from .discovery import MediaDiscovery
from .models import ClipConfig, FaceConfig, SceneDetectionConfig, WhisperConfig
from .storage import DamStorage

defs = Definitions(
    resources={
        "storage": DamStorage(),
        "discovery": MediaDiscovery(),
        "scene_detection": SceneDetectionConfig(),
        "whisper": WhisperConfig(),
        "clip": ClipConfig(),
        "face_detection": FaceConfig(),
    }
)
