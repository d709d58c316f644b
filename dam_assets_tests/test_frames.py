"""Frame access reads what it needs: a keyframe request costs one keyframe, not a GOP."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from dam_assets.demo import samples as mf
from dam_assets.media import frames
from dam_assets.media.frames import keyframes_at

from .conftest import count_decoded


def _bytes_read() -> int:
    """Bytes this process has read through syscalls (Linux /proc: real reads, no mock)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def test_a_keyframe_of_long_gop_footage_reads_only_that_keyframe(tmp_path):
    """H.264 with B-frames has a reorder delay: a decoder fed packet by packet holds the
    keyframe back until it has decoded further keyframes, which in long-GOP camera files meant
    reading (and decoding) the next GOPs for every thumbnail."""
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 255, (240, 320, 3), np.uint8) for _ in range(150)]  # big packets
    path = mf.make_video(tmp_path / "long_gop.mp4", frames=noise, gop=50, bframes=3, audio=False)
    before = _bytes_read()
    found = list(keyframes_at(path, [0.5]))
    read = _bytes_read() - before
    assert [f.time for f in found] == [0.0]  # the keyframe at or before 0.5 s
    assert found[0].image.size == (320, 240)
    assert read < path.stat().st_size / 3, f"read {read:,} of {path.stat().st_size:,} bytes"

    times = [f.time for f in keyframes_at(path, [0.1, 1.0, 2.1, 2.2, 4.0, 5.9])]
    assert times == [0.0, 2.0, 4.0]  # each keyframe once, in order


def test_sampling_long_gop_footage_skips_only_frames_nobody_asked_for(tmp_path, monkeypatch):
    """Two requests a second of H.264 with B-frames: the non-reference frames between the
    requested moments are not decoded, and every picture is the one a full decode puts on
    screen at that moment, pixel for pixel."""
    rng = np.random.default_rng(2)
    noise = [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(150)]
    path = mf.make_video(tmp_path / "b_frames.mp4", frames=noise, gop=50, bframes=3, audio=False)
    decoded = count_decoded(monkeypatch)
    times = [0.5 * i + 0.01 for i in range(12)]
    picked = list(frames.frames_along(path, times, max_side=None))
    with av.open(str(path)) as container:
        shown = {f.time: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    assert len(picked) == len(times)
    for t, picture in zip(times, picked, strict=True):
        at = max(s for s in shown if s <= t + 1e-6)  # the frame on screen at t
        assert abs(picture.time - at) < 1e-6
        assert np.array_equal(np.asarray(picture.image), shown[at])
    assert len(picked) <= len(decoded) < 0.75 * len(shown), (len(decoded), len(shown))


def test_keyframes_decoded_before_are_scaled_not_decoded_again(tmp_path, monkeypatch):
    """The sprite asks for the keyframes the poster candidates decoded already (short clips
    have few): those are scaled down from the earlier pictures, the others decoded."""
    rng = np.random.default_rng(3)
    noise = [rng.integers(0, 255, (240, 320, 3), np.uint8) for _ in range(150)]
    path = mf.make_video(tmp_path / "gop.mp4", frames=noise, gop=50, bframes=3, audio=False)
    first = list(keyframes_at(path, [0.1, 2.1], max_side=320))
    fresh = {f.time: f for f in keyframes_at(path, [0.5, 2.5, 4.5], max_side=64)}
    scaled = []
    real = frames._scaled
    monkeypatch.setattr(frames, "_scaled", lambda *a: scaled.append(1) or real(*a))
    reused = list(keyframes_at(path, [0.5, 2.5, 4.5], 64, {f.time: f for f in first}))
    assert [f.time for f in reused] == sorted(fresh) == [0.0, 2.0, 4.0]
    assert len(scaled) == 1  # only the keyframe at 4 s was decoded
    for f in reused:
        assert f.image.size == fresh[f.time].image.size
        diff = np.abs(np.asarray(f.image, np.int16) - np.asarray(fresh[f.time].image, np.int16))
        assert diff.mean() < 12  # the same picture, scaled another way
