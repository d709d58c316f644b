"""The one Definitions object of the code location (see workspace.yaml)."""

from dagster import Definitions

from .assets.proxies import proxies
from .checks import CHECKS, check_library
from .distributed import index_media_celery_job
from .jobs import (
    LIBRARY_ASSETS,
    MEDIA_ASSETS,
    capture_sessions_job,
    face_clusters_job,
    hash_large_files,
    index_media_job,
    maintain_lake,
)
from .proxy_jobs import make_proxies_job, nightly_proxies
from .resources import (
    ClipConfig,
    DamStorage,
    FaceConfig,
    MediaDiscovery,
    SceneDetectionConfig,
    WhisperConfig,
)
from .schedules import nightly, nightly_checks, nightly_compaction, nightly_face_recluster
from .sensors import media_storage_sensor

defs = Definitions(
    assets=[*MEDIA_ASSETS, *LIBRARY_ASSETS, proxies],
    asset_checks=CHECKS,
    jobs=[
        index_media_job,
        index_media_celery_job,
        capture_sessions_job,
        face_clusters_job,
        maintain_lake,
        hash_large_files,
        check_library,
        make_proxies_job,
    ],
    sensors=[media_storage_sensor],
    schedules=[
        nightly,
        nightly_face_recluster,
        nightly_compaction,
        nightly_checks,
        nightly_proxies,
    ],
    resources={
        "storage": DamStorage(),
        "discovery": MediaDiscovery(),
        "scene_detection": SceneDetectionConfig(),
        "whisper": WhisperConfig(),
        "clip": ClipConfig(),
        "face_detection": FaceConfig(),
    },
)
