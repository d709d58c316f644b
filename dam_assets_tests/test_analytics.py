"""Timeline per second and quality per scene, measured on the frames and audio the scenes and
transcripts assets already decode, through a real Dagster run on generated shots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.defs.common.ranges import range_tags
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.library.search import Filters, in_good_scenes
from dam_assets.media.frame_stats import (
    OVER_MAX,
    SHAKE_MAX,
    SHARP_MIN,
    UNDER_MAX,
    _profiles,
    profile_shift,
)
from dam_assets.media.loudness import SILENCE_DBFS, LoudnessMeter

from .conftest import copy_settled

LOOKS = mf.QUALITY_LOOKS  # normal, dark, bright, blurred, shaky: 2 s each, tone in 0, 2, 4


@pytest.fixture(scope="session")
def quality_clip(tmp_path_factory):
    return mf.age(mf.make_quality_video(tmp_path_factory.mktemp("quality") / "looks.mp4"))


def test_projection_shift_recovers_a_known_move():
    canvas = mf.texture(360, 240, seed=3)
    before = _profiles(canvas[20:164, 40:296])
    for dx, dy in ((0, 0), (3, -2), (-6, 5)):
        after = _profiles(canvas[20 - dy : 164 - dy, 40 - dx : 296 - dx])
        assert profile_shift(before[1], after[1], 16) == pytest.approx(dx, abs=0.1)
        assert profile_shift(before[2], after[2], 16) == pytest.approx(dy, abs=0.1)


def test_loudness_per_second_whatever_the_blocks():
    rate = 1000
    t = np.arange(3 * rate) / rate
    samples = np.concatenate([0.5 * np.sin(2 * np.pi * 50 * t), np.zeros(rate), [0.1] * 500])
    meter = LoudnessMeter(rate)
    blocks = np.split(samples.astype(np.float32), [333, 1700, 1701, 3999])
    assert sum(len(b) for b in meter.watch(blocks)) == len(samples)  # passes them all on
    seconds = meter.seconds()
    assert [s.second for s in seconds] == [0, 1, 2, 3, 4]
    sine = 20 * math.log10(0.5 / math.sqrt(2))
    assert [s.rms_dbfs for s in seconds[:3]] == pytest.approx([sine] * 3, abs=0.05)
    assert seconds[3].rms_dbfs == -120.0 and seconds[3].silent
    assert seconds[4].rms_dbfs == pytest.approx(-20.0) and not seconds[4].silent
    assert not any(s.silent for s in seconds[:3])


def _run(instance, store, root, checksums, assets):
    from dam_assets.definitions import defs

    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, checksums)
    result = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(checksums),
        asset_selection=[defs.resolve_assets_def(a).key for a in assets],
    )
    assert result.success


def test_scene_quality_and_timeline_from_a_real_run(
    instance, store, tmp_path, quality_clip, library
):
    root = tmp_path / "w"
    copy_settled(quality_clip, root / quality_clip.name)
    copy_settled(library["audio"], root / library["audio"].name)
    report = scan([root], store, settle_seconds=0)
    clip = report.by_path[str(root / quality_clip.name)]
    tone = report.by_path[str(root / library["audio"].name)]
    _run(instance, store, root, report.checksums, ["probe", "scenes", "transcripts"])

    scenes = store.sql(
        "SELECT * FROM scene_quality WHERE checksum = ? ORDER BY scene_index", [clip]
    ).to_pylist()

    def shot(look: str) -> dict:  # the scene holding the middle of that look's shot
        middle = 2.0 * LOOKS.index(look) + 1.0
        [found] = [s for s in scenes if s["start_s"] <= middle < s["end_s"]]
        return found

    normal, dark, bright = shot("normal"), shot("dark"), shot("bright")
    blurred, shaky = shot("blurred"), shot("shaky")
    assert len({id(s) for s in (normal, dark, bright, blurred, shaky)}) == 5  # cut apart
    assert dark["under_share"] > 0.9 and dark["brightness"] < 0.05
    assert bright["over_share"] > 0.5 and bright["brightness"] > 0.9
    for fine in (normal, blurred, shaky):
        assert fine["under_share"] <= UNDER_MAX and fine["over_share"] <= OVER_MAX
    assert normal["sharpness"] >= SHARP_MIN and shaky["sharpness"] >= SHARP_MIN
    assert blurred["sharpness"] < SHARP_MIN / 5 and blurred["noise"] < normal["noise"] / 3
    assert shaky["shake"] > 5 * SHAKE_MAX
    # the normal shot pans steadily: the camera moves, but does not shake
    assert normal["camera_motion"] > 0.002 and normal["shake"] < SHAKE_MAX
    assert blurred["shake"] < SHAKE_MAX

    sharp = Filters(sharp=True)
    good = Filters(sharp=True, well_exposed=True, steady=True)
    hits = [
        {"checksum": clip, "time_s": 2.0 * i + 1.0, "look": look} for i, look in enumerate(LOOKS)
    ]
    # blown highlights keep no detail: the bright shot is not sharp either
    assert [h["look"] for h in in_good_scenes(store, sharp, hits)] == ["normal", "shaky"]
    assert [h["look"] for h in in_good_scenes(store, good, hits)] == ["normal"]
    well = Filters(well_exposed=True)
    assert [h["look"] for h in in_good_scenes(store, well, hits)] == ["normal", "blurred", "shaky"]

    timeline = store.sql(
        "SELECT * FROM timeline WHERE checksum = ? ORDER BY second", [clip]
    ).to_pylist()
    # one row per second; AAC's padding may add a few ms of sound after the last frame
    assert [r["second"] for r in timeline][:10] == list(range(10)) and len(timeline) <= 11
    assert all(r["frames"] is None for r in timeline[10:])
    timeline = timeline[:10]
    assert all(r["frames"] == 25 for r in timeline)
    brightness = [r["brightness"] for r in timeline]
    assert max(brightness[2:4]) < 0.05 and min(brightness[4:6]) > 0.9
    assert timeline[9]["motion"] > 3 * timeline[7]["motion"]  # shaking vs out of focus
    loud = [not r["silent"] for r in timeline]
    assert loud == [True, True, False, False, True, True, False, False, True, True]
    assert all(r["rms_dbfs"] < SILENCE_DBFS for r in timeline if r["silent"])
    assert all(r["rms_dbfs"] > -20 for r in timeline if not r["silent"])
    assert len({r["dhash"] for r in timeline}) >= 8  # each second's picture hashes apart

    audio_only = store.sql(
        "SELECT * FROM timeline WHERE checksum = ? ORDER BY second", [tone]
    ).to_pylist()
    assert all(r["frames"] is None and r["brightness"] is None for r in audio_only)
    assert [r["silent"] for r in audio_only][:2] == [False, False]  # a 2 s tone (+ padding)
    assert store.sql("SELECT * FROM scene_quality WHERE checksum = ?", [tone]).num_rows == 0
