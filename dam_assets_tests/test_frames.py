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


def test_thumbnails_decode_each_picture_once_on_intra_only_footage(tmp_path, monkeypatch):
    """ProRes and MJPEG make every frame a keyframe: the poster candidates are sprite tiles, so
    the sprite reuses their decodes (each candidate was a picture of its own before: twice the
    decodes on a short clip)."""
    from dam_assets.media import thumbnails

    path = mf.make_video(tmp_path / "intra.mov", seconds=10, size=(192, 108), codec="prores_ks")
    decoded: list[int] = []
    real = frames._keyframe_after_seek

    def counting(*args, **kwargs):
        found = real(*args, **kwargs)
        if found is not None and found[1] is not None:
            decoded.append(found[0])
        return found

    monkeypatch.setattr(frames, "_keyframe_after_seek", counting)
    made = thumbnails.video_thumbnails(path, tmp_path / "thumbs", 10.0)
    tiles = [r for r in made.rows if r["kind"] == "tile"]
    assert [r["time_s"] for r in tiles] == [float(t) for t in range(10)]
    assert 0.5 <= made.poster_time <= 9.5
    assert sorted(decoded) == sorted(set(decoded)) and len(decoded) == len(tiles)


def test_opening_a_file_to_decode_it_decodes_no_picture_while_probing(tmp_path):
    """FFmpeg's stream probing decodes the first H.264 picture of every MP4 it opens (0.45 s
    a 4K file, several openings per file): `open_input` skips that, and what is decoded
    afterwards is the same picture for picture. A stream known only from its data (MPEG-TS
    here) is probed the usual way."""
    from dam_assets.media.containers import open_input

    rng = np.random.default_rng(4)
    noise = [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(30)]
    mp4 = mf.make_video(tmp_path / "clip.mp4", frames=noise, gop=10, bframes=2, audio=False)
    ts = tmp_path / "clip.ts"
    with av.open(str(mp4)) as src, av.open(str(ts), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", src.streams.video[0])
        for packet in src.demux(video=0):
            for converted in annexb.filter(packet if packet.size else None):
                converted.stream = stream
                out.mux(converted)

    with av.open(str(mp4)) as usual, open_input(mp4) as fast:
        assert usual.streams.video[0].codec_context.format is not None  # probing decoded one
        assert fast.streams.video[0].codec_context.format is None  # here it decoded none
        pictures = [
            [f.to_ndarray(format="rgb24") for f in c.decode(video=0)] for c in (usual, fast)
        ]
        assert len(pictures[0]) == len(pictures[1]) == 30
        assert all(np.array_equal(a, b) for a, b in zip(*pictures, strict=True))
    mkv = mf.make_video(tmp_path / "clip.mkv", frames=noise, gop=10, bframes=2, audio=False)
    for usual_way in (ts, mkv):  # Matroska: the probing decode tells H.264 its reorder depth
        with open_input(usual_way) as container:
            assert container.streams.video[0].codec_context.format is not None
            assert sum(1 for _ in container.decode(video=0)) == 30


def test_a_clip_of_about_a_second_still_gets_a_poster_past_its_black_intro(tmp_path):
    """Too short for three sprite tiles inside 5–95 %: the candidates are spread on their own
    (the tile times alone left only t=0, the black frame)."""
    from dam_assets.media import thumbnails

    path = mf.make_video(tmp_path / "short.mov", 1.04, (192, 108), codec="prores_ks",
                         black_intro_s=0.3)  # fmt: skip
    made = thumbnails.video_thumbnails(path, tmp_path / "thumbs", 1.04)
    assert made.poster_time is not None and made.poster_time >= 0.3
    assert made.poster_score > 0.1
