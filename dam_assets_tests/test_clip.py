"""CLIP embeddings through the real open_clip code path and a real LanceDB store.

No pretrained weights can be downloaded here, so the model is a small open_clip architecture
with random weights that conftest.py writes (config JSON + checkpoint) and points
DAM_CLIP_MODEL / DAM_CLIP_PRETRAINED at. Its vectors carry no meaning, so the search tests use
exact-match properties (an image finds itself) and the catalog filters, not semantics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dam_assets.cli.runs import index_partitions
from dam_assets.definitions import defs
from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.defs.common.ranges import contiguous_batches, range_tags
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.library.search import Filters, group_moments, search_moments
from dam_assets.media.frames import interval_times
from dam_assets.media.tags import zero_shot
from dam_assets.models.base import ModelUnavailable
from dam_assets.models.clip import ClipModel, ClipSettings, model_id

from .conftest import TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS, copy_settled


def test_interval_sampling_times():
    assert interval_times(12.0, 5.0) == [3.0, 9.0]
    assert interval_times(3.0, 5.0) == [1.5]
    assert interval_times(None, 5.0) == [0.0]
    assert interval_times(60.0, 5.0)[:2] == [2.5, 7.5] and len(interval_times(60.0, 5.0)) == 12


def test_model_loads_from_config_and_checkpoint(tmp_path):
    settings = ClipSettings(model=str(TINY_CLIP_CONFIG), pretrained=str(TINY_CLIP_WEIGHTS))
    model = ClipModel(settings, tmp_path).load()
    from PIL import Image

    images = [Image.fromarray(mf.bars_frame(96, 64, i)) for i in range(5)]
    vectors = model.embed_images(images)
    assert vectors.shape == (5, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert model.id == model_id(settings) and "dam-tiny-clip@" in model.id
    text = model.embed_text(["a beach", "a city street"])
    assert text.shape == (2, 64)


def test_missing_weights_name_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as info:
        ClipModel(ClipSettings("ViT-B-32", "laion2b_s34b_b79k"), tmp_path).load()
    message = str(info.value)
    assert "huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message
    assert str(tmp_path / "open_clip" / "ViT-B-32-laion2b_s34b_b79k.safetensors") in message
    with pytest.raises(ModelUnavailable, match="no checkpoint file"):
        ClipModel(ClipSettings("ViT-B-32", str(tmp_path / "nope.pt")), tmp_path).load()


def test_the_default_weights_are_named_without_importing_open_clip_as_open_clip_names_them():
    """Every run on a machine without CLIP weights says what to download; importing open_clip
    and torch for that message cost 5 s a run. Our one entry must stay open_clip's."""
    import subprocess
    import sys

    import open_clip

    from dam_assets.models.clip import _DEFAULT_HUB

    for (model, tag), hub in _DEFAULT_HUB.items():
        assert open_clip.get_pretrained_cfg(model, tag)["hf_hub"] == hub
    probe = (
        "import sys; from dam_assets.models.base import ModelUnavailable;"
        "from dam_assets.models.clip import ClipModel, ClipSettings\n"
        "try: ClipModel(ClipSettings(), __import__('pathlib').Path(sys.argv[1])).load()\n"
        "except ModelUnavailable as exc: print(exc)\n"
        "print('open_clip' in sys.modules, 'torch' in sys.modules)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DAM_CLIP_MODEL": "", "DAM_CLIP_PRETRAINED": ""}
    out = subprocess.run([sys.executable, "-c", probe, "/nonexistent"], capture_output=True,
                         text=True, env=env, timeout=60, check=True).stdout  # fmt: skip
    assert "huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in out
    assert out.splitlines()[-1] == "False False"


def test_zero_shot_and_moment_grouping():
    labels = ["beach", "city", "forest"]
    label_vecs = np.eye(3, dtype=np.float32)
    [[(top, score), *_]] = zero_shot(np.array([[0.1, 0.9, 0.0]], np.float32), label_vecs, labels)
    assert top == "city" and score > 0.9
    hits = [
        {"checksum": "a", "time_s": t, "score": s, "thumbnail": f"a{t}"}
        for t, s in [(2.5, 0.5), (7.5, 0.9), (12.5, 0.6), (40.0, 0.7)]
    ] + [{"checksum": "b", "time_s": 1.0, "score": 0.8, "thumbnail": "b1"}]
    moments = group_moments(hits, gap_s=7.5)
    assert [(m["checksum"], m["start"], m["end"], m["score"]) for m in moments] == [
        ("a", 2.5, 12.5, 0.9),
        ("b", 1.0, 1.0, 0.8),
        ("a", 40.0, 40.0, 0.7),
    ]
    assert moments[0]["thumbnail"] == "a7.5" and moments[0]["frames"] == 3


@pytest.fixture
def indexed(instance, store, tmp_path, library):
    root = tmp_path / "w"
    long_clip = mf.age(mf.make_cut_video(root / "long.mp4", cuts=[100, 200], frames=300))
    for name in ("h264", "still", "audio"):
        copy_settled(library[name], root / library[name].name)
    report = scan([root], store, settle_seconds=0)
    outcome = index_partitions(report.checksums, store, instance=instance, say=str)
    assert not outcome.failed_runs
    return report, long_clip


def test_embeddings_rows_vectors_and_tags(indexed, store):
    report, long_clip = indexed
    rows = store.sql("SELECT * FROM clip_frames ORDER BY checksum, time_s").to_pylist()
    long_ck = report.by_path[str(long_clip)]
    mine = [r for r in rows if r["checksum"] == long_ck]
    # 3 scenes + a keyframe every 5 s of a 12 s clip (2.0 and 7.0 s requested, keyframes
    # at or before them: GOP 25 frames = 1 s)
    assert sorted(r["source"] for r in mine) == ["interval", "interval", "scene", "scene", "scene"]
    assert all(Path(r["thumbnail"]).is_file() for r in rows)
    kinds = store.sql(
        "SELECT p.media_kind, count(c.checksum) n FROM probe p LEFT JOIN"
        " clip_frames c USING (checksum) GROUP BY ALL ORDER BY ALL"
    ).to_pylist()
    assert {k["media_kind"]: k["n"] for k in kinds}["audio"] == 0
    assert {k["media_kind"]: k["n"] for k in kinds}["image"] == 1
    # LanceDB holds exactly the catalog's rows
    lance = store.vectors.rows(("checksum", "time_s", "model_id")).to_pylist()
    assert sorted((r["checksum"], r["time_s"]) for r in lance) == sorted(
        (r["checksum"], r["time_s"]) for r in rows
    )
    tags = store.sql("SELECT checksum, scene_index, rank FROM tags WHERE checksum = ?", [long_ck])
    assert tags.num_rows == 3 * 3  # three scenes, three tags each


def test_rematerializing_replaces_vectors(indexed, store, instance):
    report, _ = indexed
    before = sorted(map(tuple, (r.values() for r in store.vectors.rows().to_pylist())))
    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    [batch] = contiguous_batches(report.checksums, ordered, 50)
    result = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(batch),
        asset_selection=[defs.resolve_assets_def("clip_embeddings").key],
    )
    assert result.success
    after = sorted(map(tuple, (r.values() for r in store.vectors.rows().to_pylist())))
    assert (
        after == before
        and len(after) == store.sql("SELECT count(*) n FROM clip_frames").to_pylist()[0]["n"]
    )


def test_one_embedding_pass_mixes_files(indexed, store, instance, monkeypatch):
    report, _ = indexed
    calls = []
    real = ClipModel.embed_images

    def spy(self, images):
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(ClipModel, "embed_images", spy)
    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    [batch] = contiguous_batches(report.checksums, ordered, 50)
    defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(batch),
        asset_selection=[defs.resolve_assets_def("clip_embeddings").key],
    )
    frames = store.sql("SELECT count(*) n, count(DISTINCT checksum) files FROM clip_frames")
    [counts] = frames.to_pylist()
    assert calls == [counts["n"]] and counts["files"] == 3  # all files, one pass

    # long videos: frames are embedded chunk by chunk as they pile up, not all held at once
    from dam_assets.defs.search import clip_embeddings as clip_asset

    calls.clear()
    monkeypatch.setattr(clip_asset, "EMBED_CHUNK", 2)
    defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(batch),
        asset_selection=[defs.resolve_assets_def("clip_embeddings").key],
    )
    assert len(calls) > 1 and sum(calls) == counts["n"]
    assert store.vectors.count() == counts["n"]


def test_a_frame_finds_itself_first_and_filters(indexed, store):
    report, long_clip = indexed
    long_ck = report.by_path[str(long_clip)]
    [scene] = store.sql(
        "SELECT thumbnail, time_s FROM clip_frames WHERE checksum = ? AND scene_index = 1"
        " AND source = 'scene'",
        [long_ck],
    ).to_pylist()
    [top, *_] = search_moments(image=scene["thumbnail"], limit=5)
    assert top["checksum"] == long_ck and top["path"] == str(long_clip)
    assert top["start"] <= scene["time_s"] <= top["end"] and top["score"] > 0.999
    assert {"checksum", "path", "start", "end", "score", "thumbnail"} <= set(top)
    short = search_moments(image=scene["thumbnail"], filters=Filters(max_duration=5))
    assert short and long_ck not in {m["checksum"] for m in short}
    assert search_moments(text="anything", filters=Filters(has_speech=True)) == []
    hd = search_moments(text="anything", filters=Filters(min_height=1080))
    assert hd == []
    cams = search_moments(text="anything", filters=Filters(camera="TestCam"))
    assert {m["path"] for m in cams} == {
        str(report_path) for report_path in [p for p in report.by_path if p.endswith(".jpg")]
    }


def test_dam_search_cli(indexed, data_dir, instance, tmp_path):
    _, long_clip = indexed
    env = {**os.environ, "DAM_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "dam_assets.cli", "search", "color bars", "--json", "--limit", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    moments = json.loads(out.stdout)
    assert 1 <= len(moments) <= 3
    assert all(
        {"checksum", "path", "start", "end", "score", "thumbnail"} <= set(m) for m in moments
    )
    text = subprocess.run(
        [sys.executable, "-m", "dam_assets.cli", "search", "color bars"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert text.returncode == 0 and str(long_clip.parent) in text.stdout


def index_media_job():
    """Module-level handle for `reconstructable()`: each step runs in its own process."""
    from dam_assets.definitions import defs

    return defs.resolve_job_def("index_media")


def test_lineage_is_complete_under_the_multiprocess_executor(tmp_path, library, store, instance):
    """Stills are embedded from the poster `thumbnails` writes: clip_embeddings depends on it,
    so under the multiprocess executor (sensor and UI runs) it never runs before the poster
    exists (it once did, and the still was recorded as 'Vanished')."""
    from dagster import AssetKey, execute_job, reconstructable

    from dam_assets.definitions import defs
    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
    from dam_assets.defs.common.ranges import range_tags

    deps = defs.resolve_assets_def("clip_embeddings").asset_deps[AssetKey("clip_embeddings")]
    assert AssetKey("thumbnails") in deps
    for name in ("still", "h264"):
        copy_settled(library[name], tmp_path / "w" / library[name].name)
    report = scan([tmp_path / "w"], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    needed = {AssetKey(k) for k in ("probe", "thumbnails", "scenes", "clip_embeddings")}
    job = reconstructable(index_media_job).get_subset(  # each step is a process start-up:
        asset_selection=needed,
        asset_check_selection=set(),  # only what clip_embeddings needs
    )
    with execute_job(job, instance=instance, tags=range_tags(report.checksums)) as result:
        assert result.success
        pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        assert len(pids) > 1  # steps ran in processes of their own
    sources = store.sql("SELECT DISTINCT source FROM clip_frames ORDER BY 1").column(0)
    assert "image" in sources.to_pylist()
    assert store.sql("SELECT * FROM ingest_errors WHERE checksum IS NOT NULL").num_rows == 0
