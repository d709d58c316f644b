"""The people job: place new face tracks, or re-cluster everyone; and its nightly schedule."""

from dagster import DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from ...settings import cron, timezone
from .face_clusters import face_clusters

face_clusters_job = define_asset_job(
    "cluster_faces",
    selection=[face_clusters],
    description="Place new face tracks among people (the sensor, after new faces), or re-cluster"
    " everyone (config `recluster: true`; the nightly schedule, `dam faces recluster`).",
)

# A full re-cluster of people once the night's re-runs are in (a schedule targets one job, so
# this is its own). Ids stay stable and names are kept, so it is safe to run unattended.
nightly_face_recluster = ScheduleDefinition(
    name="nightly_face_recluster",
    job=face_clusters_job,
    cron_schedule=cron("RECLUSTER", "15 3 * * *"),
    execution_timezone=timezone(),
    default_status=DefaultScheduleStatus.RUNNING,
    run_config={"ops": {"face_clusters": {"config": {"recluster": True}}}},
    description="Re-cluster every face track into people (average linkage); ids kept by"
    " overlap, names and hand-placed faces kept.",
)
