import shutil
from collections.abc import Iterator
from pathlib import Path

from dagster import AssetExecutionContext
from PIL import Image

from ...media.errors import MediaError
from ...media.face_tracks import carry_over, link_tracks, stable_track_ids
from ...media.faces import FoundFace, face_batcher, find_faces, sample_times
from ...media.frames import Frame, frames_along
from ...models.faces import FaceModel
from ...storage.schemas import FACE_TRACKS, FACES, rows_to_table
from ..common.batch import run_per_partition, visual_inputs
from ..common.partitions import per_file_asset
from ..common.results import load_or_skip, not_upstream, per_file_results
from ..common.versions import faces_version
from ..media.probe import probe
from ..media.scenes import scenes
from ..media.thumbnails import thumbnails
from ..resources import DamStorage, FaceConfig

TRACKING = {"min_iou": 0.3, "min_similarity": 0.5, "max_gap_s": 1.0, "min_length": 3}


@per_file_asset(
    deps=[probe, scenes, thumbnails],
    group_name="people",
    kinds={"insightface", "onnx", "lancedb"},
    code_version=faces_version(FaceConfig().settings(), TRACKING),
    pool="faces",
    description="Faces (insightface) in frames sampled twice a second plus every scene's"
    " keyframe, filtered by size, score and sharpness, recognised in batches across the run's"
    " files, and linked into tracks (one face through a shot). Tables `faces`, `face_tracks`;"
    " vectors in LanceDB `faces` and `face_tracks`; crops under thumbnails/.",
)
def faces(
    context: AssetExecutionContext, storage: DamStorage, face_detection: FaceConfig
) -> Iterator:
    store = storage.store()
    settings = face_detection.settings()
    keys = list(context.partition_keys)
    probed, scene_rows, visual = visual_inputs(store, keys)
    if not settings.enabled:
        context.log.info("DAM_FACE_MODEL is 'none': faces are not looked for")
        visual = []
        model = None
    else:
        model = load_or_skip(context, store, FaceModel(settings, store.models_dir))
        if model is None:
            return
    batcher = face_batcher(model) if model else None
    found: dict[str, list[FoundFace]] = {}
    cuts: dict[str, list[float]] = {}
    looked_total = 0

    def work(checksum: str, path: str) -> dict:
        nonlocal looked_total
        info = probed[checksum]
        crops = store.media_dir(store.thumbnails_dir, checksum) / "faces"
        if info["media_kind"] == "image":
            # the upright poster (EXIF orientation applied); boxes are in the file's pixels
            poster_path = store.media_dir(store.thumbnails_dir, checksum) / "poster_large.jpg"
            if poster_path.is_file():
                with Image.open(poster_path) as im:
                    poster = im.convert("RGB")
                side = max(info["width"] or 0, info["height"] or 0)
                frames = [Frame(0.0, poster, side / max(poster.size) if side else 1.0)]
            else:  # thumbnails failed on it (recorded there): never decode it another way
                raise MediaError(
                    "NoPoster",
                    "This still has no poster (see its `thumbnails` error), so faces are not"
                    " looked for in it.",
                )
            still, keyframe_times = True, set()
        else:
            rows = sorted(scene_rows.get(checksum, []), key=lambda r: r["scene_index"])
            keyframe_times = {round(r["keyframe_time_s"], 3) for r in rows if r["keyframe_path"]}
            cuts[checksum] = [r["start_s"] for r in rows if r["scene_index"] > 0]
            times = sample_times(info["duration_s"], settings.samples_per_second, keyframe_times)
            frames = frames_along(path, times, max_side=settings.frame_side)
            still = False
        staging = crops.with_name("faces.partial")
        shutil.rmtree(staging, ignore_errors=True)  # what a killed run left
        staging.mkdir(parents=True)
        faces_found, looked = find_faces(
            frames, model, batcher, crops, staging, keyframe_times, still
        )
        found[checksum] = faces_found
        looked_total += looked
        return {"frames_looked_at": looked, "faces": len(faces_found)}

    forgotten: list[str] = []

    def forget(checksum: str) -> None:  # the file's content is bad: no stale faces stay
        for table in ("faces", "face_tracks"):
            store.lake.clear_unit(table, checksum)
        for folder in ("faces", "faces.partial"):
            shutil.rmtree(store.media_dir(store.thumbnails_dir, checksum) / folder, True)
        forgotten.append(checksum)

    outcome = run_per_partition(context, store, "faces", visual, work, on_failure=forget)
    if batcher:
        batcher.flush()  # the run's last partial batch
    for key in list(outcome.done):  # a recognizer batch failed: those files are not done
        if any(f.sample.vector.size == 0 for f in found.get(key, [])):
            message = f"the face recognizer failed on this file's faces: {batcher.error}"
            store.record_stage_error("faces", key, None, "RecognizerError", message)
            outcome.fail(key, message)

    model_id = model.id if model else None
    done = list(outcome.done)
    others = [k for k in probed if k not in visual]  # audio, or faces switched off
    replaced = done + others + forgotten
    face_vectors, track_vectors = [], []
    track_total = 0
    # the tracks these files had before: a track that continues one keeps its id, so people's
    # placements and a user's pins follow without a write to people.sqlite (only the host
    # writes that file; this step may run on a worker)
    before = store.lake.read_units("faces", done).to_pylist() if done else []
    for key in done + others:
        mine = found.get(key, [])
        still = probed[key]["media_kind"] == "image"
        tracks = link_tracks(
            [f.sample for f in mine],
            cuts.get(key, []),
            **{**TRACKING, "min_length": 1 if still else TRACKING["min_length"]},
        )
        face_rows, track_rows = _rows(key, mine, tracks, model_id)
        old = _boxes([r for r in before if r["checksum"] == key])
        names = stable_track_ids(
            sorted({t for t, _, _ in old}),
            carry_over(old, _boxes(face_rows)),
            [r["track_id"] for r in track_rows],
            key,
        )
        for row in face_rows + track_rows:
            if row["track_id"]:
                row["track_id"] = names[row["track_id"]]
        face_vectors += [
            {**row, "vector": f.sample.vector} for row, f in zip(face_rows, mine, strict=True)
        ]
        track_vectors += [
            {**row, "vector": t.vector} for row, t in zip(track_rows, tracks, strict=True)
        ]
        store.lake.write_unit("faces", key, rows_to_table(FACES, face_rows))
        store.lake.write_unit("face_tracks", key, rows_to_table(FACE_TRACKS, track_rows))
        if key in found:  # the rows are written: their crops replace the old ones
            _swap_in_crops(store.media_dir(store.thumbnails_dir, key) / "faces")
        track_total += len(track_rows)
    if model:  # one commit per table for the whole run
        store.face_vectors.replace(model_id, replaced, face_vectors, dim=model.dim)
        store.track_vectors.replace(model_id, replaced, track_vectors, dim=model.dim)
    else:  # faces switched off: none of these files has faces now
        store.face_vectors.delete(replaced)
        store.track_vectors.delete(replaced)
    metadata = outcome.metadata()
    metadata.update(
        model_id=model_id or "none",
        frames_looked_at=looked_total,
        faces=len(face_vectors),
        tracks=track_total,
        faces_per_batch=settings.batch_size,
    )
    not_upstream(outcome, keys, set(probed), "probe")
    yield from per_file_results(context, outcome, metadata, faces_version(settings, TRACKING))


def _rows(key: str, mine: list[FoundFace], tracks: list, model_id: str | None):
    """One file's `faces` and `face_tracks` rows (vectors go beside them into LanceDB)."""
    face_rows = []
    for n, face in enumerate(mine):
        s = face.sample
        face_rows.append(
            {
                "checksum": key,
                "face_id": f"{key}:{n}",
                "time_s": s.time_s,
                "source": face.source,
                "x1": float(s.bbox[0]),
                "y1": float(s.bbox[1]),
                "x2": float(s.bbox[2]),
                "y2": float(s.bbox[3]),
                "det_score": face.score,
                "blur": face.blur,
                "landmarks": face.landmarks,
                "track_id": f"{key}:t{s.track}" if s.track is not None else None,
                "crop": str(face.crop),
                "model_id": model_id,
            }
        )
    crop_of = {id(f.sample): str(f.crop) for f in mine}
    track_rows = [
        {
            "checksum": key,
            "track_id": f"{key}:t{track.index}",
            "start_s": track.start_s,
            "end_s": track.end_s,
            "detections": len(track.members),
            "best_crop": crop_of[id(track.best)],
            "best_score": track.best.quality,
            "model_id": model_id,
        }
        for track in tracks
    ]
    return face_rows, track_rows


def _boxes(face_rows: list[dict]) -> list[tuple[str, float, list[float]]]:
    """(track, time, box) of tracked faces: what `carry_over` compares across runs."""
    return [
        (r["track_id"], r["time_s"], [r["x1"], r["y1"], r["x2"], r["y2"]])
        for r in face_rows
        if r["track_id"]
    ]


def _swap_in_crops(crops: Path) -> None:
    """Replace a file's crops folder by the run's staging folder (two renames: old rows never
    point at a half-written set)."""
    staging, old = crops.with_name("faces.partial"), crops.with_name("faces.old")
    shutil.rmtree(old, ignore_errors=True)
    if crops.exists():
        crops.rename(old)
    if staging.exists():
        staging.rename(crops)
    shutil.rmtree(old, ignore_errors=True)
