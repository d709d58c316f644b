"""The one Definitions object of the code location (see workspace.yaml)."""

from dagster import Definitions

from .defs.indexing.checks import CHECKS, check_library
from .defs.indexing.distributed import index_media_celery_job
from .defs.indexing.jobs import (
    LIBRARY_ASSETS,
    MEDIA_ASSETS,
    capture_sessions_job,
    face_clusters_job,
    hash_large_files,
    index_media_job,
    maintain_lake,
)
from .defs.indexing.schedules import (
    nightly,
    nightly_checks,
    nightly_compaction,
    nightly_face_recluster,
)
from .defs.indexing.sensor import media_storage_sensor
from .defs.resources import (
    ClipConfig,
    DamStorage,
    FaceConfig,
    MediaDiscovery,
    SceneDetectionConfig,
    WhisperConfig,
)

defs = Definitions(
    assets=[*MEDIA_ASSETS, *LIBRARY_ASSETS],
    asset_checks=CHECKS,
    jobs=[
        index_media_job,
        index_media_celery_job,
        capture_sessions_job,
        face_clusters_job,
        maintain_lake,
        hash_large_files,
        check_library,
    ],
    sensors=[media_storage_sensor],
    schedules=[nightly, nightly_face_recluster, nightly_compaction, nightly_checks],
    resources={
        "storage": DamStorage(),
        "discovery": MediaDiscovery(),
        "scene_detection": SceneDetectionConfig(),
        "whisper": WhisperConfig(),
        "clip": ClipConfig(),
        "face_detection": FaceConfig(),
    },
)
