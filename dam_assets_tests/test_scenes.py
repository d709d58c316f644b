from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scenedetect
from scenedetect import AdaptiveDetector, ContentDetector, HashDetector

from dam_assets.cli.runs import index_partitions
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.media.scenes import SceneSettings, detect_scenes, write_keyframes

from .conftest import copy_settled

CUTS = [30, 75]
SHOTS = [(0, 30), (30, 75), (75, 100)]


@pytest.fixture(scope="session")
def cut_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cuts")
    return mf.age(mf.make_cut_video(folder / "three_shots.mp4", CUTS, frames=100))


@pytest.fixture(scope="session")
def still_clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nocut")
    return mf.age(mf.make_video(folder / "one_shot.mp4", seconds=3, audio=False))


def test_known_cuts_at_exact_frames(cut_clip):
    detection = detect_scenes(cut_clip)
    assert [(s.start_frame, s.end_frame) for s in detection.scenes] == [
        (0, 30),
        (30, 75),
        (75, 100),
    ]
    assert detection.fps == 25.0 and detection.frames == 100
    assert [s.start_s for s in detection.scenes] == [0.0, 1.2, 3.0]


def test_clip_without_cut_is_one_scene(still_clip):
    detection = detect_scenes(still_clip)
    assert [(s.start_frame, s.end_frame) for s in detection.scenes] == [(0, 75)]


@pytest.mark.parametrize(
    ("settings", "reference"),
    [
        (SceneSettings(), ContentDetector()),
        (SceneSettings(threshold=15.0, min_scene_len=5), ContentDetector(15.0, 5)),
        (SceneSettings(detector="adaptive"), AdaptiveDetector()),
        (SceneSettings(detector="hash"), HashDetector()),
        (SceneSettings(backend="opencv"), ContentDetector()),
    ],
)
def test_agrees_with_pyscenedetect_api(cut_clip, settings, reference):
    ours = [(s.start_frame, s.end_frame) for s in detect_scenes(cut_clip, settings).scenes]
    theirs = scenedetect.detect(
        str(cut_clip), reference, backend=settings.backend, start_in_scene=True
    )
    assert ours == [(a.frame_num, b.frame_num) for a, b in theirs]


def test_settings_fingerprint_follows_parameters():
    assert SceneSettings().fingerprint() == SceneSettings(threshold=27.0).fingerprint()
    assert SceneSettings().fingerprint() != SceneSettings(threshold=20.0).fingerprint()
    assert SceneSettings().params()["threshold"] == 27.0


def test_keyframes_are_inside_their_scene(cut_clip, tmp_path):
    detection = detect_scenes(cut_clip)
    write_keyframes(cut_clip, detection, tmp_path)
    for scene in detection.scenes:
        assert Path(scene.keyframe_path).is_file()
        assert scene.start_s <= scene.keyframe_time_s < scene.end_s
        assert scene.keyframe_time_s == pytest.approx(scene.best_frame / 25.0)


def test_keyframes_come_from_the_detection_pass_as_a_decode_gives_them(
    cut_clip, tmp_path, monkeypatch
):
    """Each scene's chosen picture is kept while scenes are detected: writing the keyframes
    decodes nothing, and each picture is, pixel for pixel and in time, the frame a decode at
    that moment gives."""
    from dam_assets.media import scenes as scenes_module
    from dam_assets.media.frames import frames_along

    detection = detect_scenes(cut_clip)
    assert sorted(detection.pictures) == sorted(s.best_frame for s in detection.scenes)
    for scene in detection.scenes:
        kept = detection.pictures[scene.best_frame]
        [decoded] = frames_along(cut_clip, [(scene.best_frame + 0.5) / 25], max_side=640)
        assert kept.time == decoded.time and kept.image.size == decoded.image.size
        assert np.array_equal(np.asarray(kept.image), np.asarray(decoded.image))

    def no_decode(*args, **kwargs):
        raise AssertionError("the keyframes were decoded again")

    monkeypatch.setattr(scenes_module, "frames_along", no_decode)
    write_keyframes(cut_clip, detection, tmp_path)
    assert all(Path(s.keyframe_path).is_file() for s in detection.scenes)


def test_a_scene_without_a_kept_picture_is_decoded(cut_clip, tmp_path):
    detection = detect_scenes(cut_clip)
    first = detection.scenes[0]
    del detection.pictures[first.best_frame]  # as when a late cut split its scene
    write_keyframes(cut_clip, detection, tmp_path)
    assert first.keyframe_time_s == pytest.approx(first.best_frame / 25.0)
    assert all(Path(s.keyframe_path).is_file() for s in detection.scenes)


def test_scenes_asset_rows_and_idempotency(
    instance, store, tmp_path, cut_clip, still_clip, library
):

    root = tmp_path / "w"
    for clip in (cut_clip, still_clip, library["audio"], library["still"]):
        copy_settled(clip, root / clip.name)
    report = scan([root], store, settle_seconds=0)
    index_partitions(report.checksums, store, instance=instance, say=str)
    query = "SELECT * FROM scenes ORDER BY checksum, scene_index"
    rows = store.sql(query).to_pylist()
    by_file = {}
    for r in rows:
        by_file.setdefault(r["checksum"], []).append(r)
    cut_rows = by_file[report.by_path[str(root / cut_clip.name)]]
    assert [(r["start_frame"], r["end_frame"]) for r in cut_rows] == [(0, 30), (30, 75), (75, 100)]
    assert cut_rows[1]["start_s"] == pytest.approx(1.2) and cut_rows[1][
        "duration_s"
    ] == pytest.approx(1.8)
    assert json.loads(cut_rows[0]["params_json"])["threshold"] == 27.0
    assert all(Path(r["keyframe_path"]).is_file() for r in rows)
    assert len(by_file) == 2  # audio and the still have no scenes
    before = store.sql(query)

    from dam_assets.definitions import defs
    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
    from dam_assets.defs.common.ranges import contiguous_batches, range_tags

    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    [batch] = contiguous_batches(report.checksums, ordered, 50)
    result = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(batch),
        asset_selection=[defs.resolve_assets_def("scenes").key],
    )
    assert result.success
    assert store.sql(query).equals(before)
