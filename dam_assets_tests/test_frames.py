"""Frame access reads what it needs: a keyframe request costs one keyframe, not a GOP."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dam_assets.demo import samples as mf
from dam_assets.media.frames import keyframes_at


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
