"""The one Definitions object of the code location (see workspace.yaml)."""

from dagster import Definitions

from .assets.probe import probe
from .assets.thumbnails import thumbnails
from .jobs import index_media_job, maintain_lake
from .resources import DamStorage, MediaDiscovery
from .schedules import nightly_compaction
from .sensors import media_storage_sensor

defs = Definitions(
    assets=[probe, thumbnails],
    jobs=[index_media_job, maintain_lake],
    sensors=[media_storage_sensor],
    schedules=[nightly_compaction],
    resources={"storage": DamStorage(), "discovery": MediaDiscovery()},
)
