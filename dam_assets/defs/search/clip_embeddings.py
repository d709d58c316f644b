from collections.abc import Iterator

import numpy as np
from dagster import AssetExecutionContext
from PIL import Image

from ...media.frames import interval_times, keyframes_at
from ...media.output import save_jpeg
from ...media.tags import PROMPT, zero_shot
from ...models.base import Batcher
from ...models.clip import ClipModel
from ...storage.schemas import CLIP_FRAMES, TAGS, rows_to_table
from ..common.batch import run_per_partition, visual_inputs
from ..common.partitions import per_file_asset
from ..common.results import load_or_skip, not_upstream, per_file_results
from ..common.versions import clip_version
from ..media.scenes import scenes
from ..media.thumbnails import thumbnails
from ..resources import ClipConfig, DamStorage

FRAME_SIDE = 320  # stored thumbnail size; CLIP itself sees 224 px
# Frames held before they are embedded: batches still mix files, and a run of long videos
# holds at most this many decoded images (about 170 MB at 320 px), not all of them.
EMBED_CHUNK = 1024


def _version(clip: ClipConfig) -> str:
    return clip_version(clip.settings(), clip.every_seconds, clip.vocabulary(), clip.tags_per_scene)


@per_file_asset(
    deps=[scenes, thumbnails],  # scene keyframes, and the poster of every still
    group_name="search",
    kinds={"open-clip", "pytorch", "lancedb"},
    code_version=_version(ClipConfig()),
    pool="embedding",
    description="CLIP vectors for every scene's keyframe plus a frame every few seconds (seeking,"
    " not decoding everything), batched across the run's files, in LanceDB table `clip_frames`;"
    " zero-shot tags per scene in `tags`.",
)
def clip_embeddings(
    context: AssetExecutionContext, storage: DamStorage, clip: ClipConfig
) -> Iterator:
    store = storage.store()
    settings = clip.settings()
    keys = list(context.partition_keys)
    probed, scene_rows, visual = visual_inputs(store, keys)
    model = load_or_skip(context, store, ClipModel(settings, store.models_dir))
    if model is None:
        return

    frames: dict[str, list[dict]] = {}  # checksum -> frame rows (vector filled in below)

    def give(row: dict, vector: np.ndarray) -> None:
        row["vector"] = vector
        row["model_id"] = model.id

    # The model loads once per run; batches mix files; a failed batch fails only its files.
    batcher = Batcher(model.embed_images, EMBED_CHUNK, give)

    def extract(checksum: str, path: str) -> dict:
        info = probed[checksum]
        out_dir = store.media_dir(store.thumbnails_dir, checksum)
        rows: list[tuple[dict, Image.Image]] = []
        if info["media_kind"] == "image":
            with Image.open(out_dir / "poster_large.jpg") as poster:
                rows.append(
                    (
                        _row(checksum, 0.0, None, "image", out_dir / "poster_large.jpg"),
                        poster.convert("RGB"),
                    )
                )
        else:
            for scene in sorted(scene_rows.get(checksum, []), key=lambda r: r["scene_index"]):
                if scene["keyframe_path"]:
                    with Image.open(scene["keyframe_path"]) as kf:
                        rows.append(
                            (
                                _row(
                                    checksum,
                                    scene["keyframe_time_s"],
                                    scene["scene_index"],
                                    "scene",
                                    scene["keyframe_path"],
                                ),
                                kf.convert("RGB"),
                            )
                        )
            times = interval_times(info["duration_s"], clip.every_seconds)
            for frame in keyframes_at(path, times, max_side=FRAME_SIDE):
                thumb = out_dir / f"frame_{round(frame.time * 1000):09d}.jpg"
                save_jpeg(frame.image, thumb, quality=80)
                scene_index = _scene_at(scene_rows.get(checksum, []), frame.time)
                rows.append(
                    (_row(checksum, frame.time, scene_index, "interval", thumb), frame.image)
                )
        keep = {r["thumbnail"] for r, _ in rows}
        for old in out_dir.glob("frame_*.jpg"):  # samples of an earlier run
            if str(old) not in keep:
                old.unlink()
        frames[checksum] = [r for r, _ in rows]
        for row, image in rows:
            batcher.add(image, row)
        return {"frames": len(rows)}

    outcome = run_per_partition(context, store, "clip_embeddings", visual, extract)
    batcher.flush()  # the run's last partial batch
    for key in list(outcome.done):  # a chunk failed to embed: those files are not done
        if any("vector" not in r for r in frames[key]):
            message = f"the CLIP model failed on this file's frames: {batcher.error}"
            store.record_stage_error("clip_embeddings", key, None, "EmbeddingError", message)
            outcome.fail(key, message)

    done = list(outcome.done)
    non_visual = [k for k in probed if k not in visual]
    rows = [r for k in done for r in frames[k]]
    store.vectors.replace(model.id, done + non_visual, rows, dim=model.dim)  # one commit
    vocabulary = clip.vocabulary()
    label_vectors = model.embed_text([PROMPT.format(w) for w in vocabulary])
    tag_count = 0
    for key in done + non_visual:
        mine = frames.get(key, [])
        store.lake.write_unit(
            "clip_frames",
            key,
            rows_to_table(
                CLIP_FRAMES, [{k: r.get(k) for k in CLIP_FRAMES.schema.names} for r in mine]
            ),
        )
        tagged = [r for r in mine if r["source"] in ("scene", "image")]
        tag_rows = []
        if tagged:
            best = zero_shot(
                np.stack([r["vector"] for r in tagged]),
                label_vectors,
                vocabulary,
                model.logit_scale(),
                clip.tags_per_scene,
            )
            for frame_row, ranked in zip(tagged, best, strict=True):
                for rank, (tag, score) in enumerate(ranked):
                    tag_rows.append(
                        {
                            "checksum": key,
                            "scene_index": frame_row["scene_index"],
                            "time_s": frame_row["time_s"],
                            "tag": tag,
                            "score": score,
                            "rank": rank,
                            "model_id": model.id,
                        }
                    )
        store.lake.write_unit("tags", key, rows_to_table(TAGS, tag_rows))
        tag_count += len(tag_rows)
    indexed = store.vectors.ensure_index(dim=model.dim)
    metadata = outcome.metadata()
    metadata.update(
        model_id=model.id,
        frames_embedded=len(rows),
        tags=tag_count,
        vectors_total=store.vectors.count(model.id),
        index_built=indexed,
    )
    not_upstream(outcome, keys, set(probed), "probe")
    yield from per_file_results(context, outcome, metadata, _version(clip))


def _row(checksum: str, time_s: float, scene_index: int | None, source: str, thumb) -> dict:
    return {
        "checksum": checksum,
        "time_s": float(time_s or 0.0),
        "scene_index": scene_index,
        "source": source,
        "thumbnail": str(thumb),
    }


def _scene_at(scene_rows: list[dict], t: float) -> int | None:
    for scene in scene_rows:
        if scene["start_s"] <= t < scene["end_s"]:
            return scene["scene_index"]
    return None
