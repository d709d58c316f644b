from dagster import AssetExecutionContext, Config, MaterializeResult, asset
from pydantic import Field

from ...library.people import cluster_people
from ..resources import DamStorage, FaceConfig
from .faces import faces


class FaceClusterRun(Config):
    recluster: bool = Field(
        default=False,
        description="Re-cluster every face track (nightly does). Names and what people placed by"
        " hand are kept; person ids stay stable. Off: only new tracks are assigned.",
    )


@asset(
    deps=[faces],
    group_name="people",
    kinds={"numpy", "sqlite", "parquet"},
    code_version="face-clusters-1",
    description="People across the library from face tracks: new tracks join the nearest person"
    " (cosine distance ≤ 0.5), a new person needs 3 agreeing appearances; a full re-cluster"
    " (average linkage) runs on demand and nightly. Stable ids; names never lost; two faces of"
    " one frame are never one person. Tables `people`, `face_clusters`.",
)
def face_clusters(
    context: AssetExecutionContext,
    config: FaceClusterRun,
    storage: DamStorage,
    face_detection: FaceConfig,
) -> MaterializeResult:
    store = storage.store()
    report = cluster_people(
        store, face_detection.cluster_params(), full=config.recluster, say=context.log.info
    )
    context.log.info(
        f"{report.people} people; {report.assigned}/{report.tracks} tracks placed,"
        f" {report.created} new people, {report.dropped} dropped"
    )
    return MaterializeResult(
        metadata={
            "mode": "re-cluster" if config.recluster else "incremental",
            "tracks": report.tracks,
            "tracks_assigned": report.assigned,
            "people": report.people,
            "people_created": report.created,
            "people_dropped": report.dropped,
            "tracks_of_other_models": report.other_model_tracks,
            "model_id": report.model_id or "none",
        }
    )
