import json
import time
from collections.abc import Iterator

from dagster import AssetExecutionContext

from ...media.scenes import detect_scenes, write_keyframes
from ...storage.schemas import SCENE_QUALITY, SCENES, TIMELINE_FRAMES, rows_to_table
from ..common.batch import probe_rows, run_per_partition
from ..common.partitions import per_file_asset
from ..common.results import not_upstream, per_file_results
from ..common.versions import scenes_version
from ..resources import DamStorage, SceneDetectionConfig
from .probe import probe


@per_file_asset(
    deps=[probe],
    group_name="media",
    kinds={"pyscenedetect", "parquet"},
    # Parameters from the environment are part of the version, so changing them makes
    # existing partitions stale in the UI (and for the nightly re-materialization).
    code_version=scenes_version(SceneDetectionConfig().settings()),
    pool="video_analysis",
    description="Scene cuts (PySceneDetect; ContentDetector by default) with start/end time and"
    " frame, and one best-quality keyframe per scene. Table `scenes`; only videos have scenes."
    " From the same decoded frames: exposure, sharpness, noise and steadiness per scene"
    " (`scene_quality`) and brightness, motion and a dHash per second (`timeline_frames`, in"
    " the `timeline` view).",
)
def scenes(
    context: AssetExecutionContext, storage: DamStorage, scene_detection: SceneDetectionConfig
) -> Iterator:
    store = storage.store()
    settings = scene_detection.settings()
    params = json.dumps(settings.params(), sort_keys=True)
    keys = list(context.partition_keys)
    probed = probe_rows(store, keys)
    videos = [k for k in keys if k in probed and probed[k]["media_kind"] == "video"]
    tables = (SCENES, SCENE_QUALITY, TIMELINE_FRAMES)
    for key in set(probed) - set(videos):  # audio and stills: no scenes, and no stale rows
        for spec in tables:
            store.lake.write_unit(spec.name, key, spec.schema.empty_table())
    totals = {"scenes": 0, "frames": 0, "media_s": 0.0, "seconds": 0.0}

    def work(checksum: str, path: str) -> dict:
        started = time.perf_counter()
        detection = detect_scenes(path, settings)
        write_keyframes(path, detection, store.media_dir(store.thumbnails_dir, checksum))
        rows = [
            {
                "checksum": checksum,
                "scene_index": s.index,
                "start_s": s.start_s,
                "end_s": s.end_s,
                "start_frame": s.start_frame,
                "end_frame": s.end_frame,
                "duration_s": s.end_s - s.start_s,
                "fps": detection.fps,
                "detector": settings.detector,
                "params_json": params,
                "keyframe_path": s.keyframe_path,
                "keyframe_time_s": s.keyframe_time_s,
                "keyframe_score": s.best_score,
            }
            for s in detection.scenes
        ]
        quality = [
            {
                "checksum": checksum,
                "scene_index": s.index,
                "start_s": s.start_s,
                "end_s": s.end_s,
                **vars(s.quality),
            }
            for s in detection.scenes
            if s.quality is not None
        ]
        timeline = [{"checksum": checksum, **vars(second)} for second in detection.seconds]
        store.lake.write_unit("scene_quality", checksum, rows_to_table(SCENE_QUALITY, quality))
        store.lake.write_unit("timeline_frames", checksum, rows_to_table(TIMELINE_FRAMES, timeline))
        store.lake.write_unit("scenes", checksum, rows_to_table(SCENES, rows))
        seconds = time.perf_counter() - started
        media_s = detection.frames / detection.fps if detection.fps else 0.0
        totals["scenes"] += len(rows)
        totals["frames"] += detection.frames
        totals["media_s"] += media_s
        totals["seconds"] += seconds
        return {
            "scene_count": len(rows),
            "frames": detection.frames,
            "decode_fps": round(detection.frames / seconds, 1) if seconds else None,
            "realtime_factor": round(media_s / seconds, 2) if seconds else None,
        }

    def forget(checksum: str) -> None:
        for spec in tables:
            store.lake.clear_unit(spec.name, checksum)

    outcome = run_per_partition(context, store, "scenes", videos, work, on_failure=forget)
    not_upstream(outcome, keys, set(probed), "probe")
    metadata = outcome.metadata()
    seconds = totals["seconds"] or 1e-9
    metadata.update(
        scene_count=totals["scenes"],
        detector=settings.detector,
        params=params,
        frames_per_second=round(totals["frames"] / seconds, 1),
        realtime_factor=round(totals["media_s"] / seconds, 2),
        not_video=len(probed) - len(videos),
    )
    yield from per_file_results(context, outcome, metadata, scenes_version(settings))
