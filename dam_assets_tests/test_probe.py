from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dam_assets.demo import samples as mf
from dam_assets.media.errors import MediaError
from dam_assets.media.probe import parse_datetime, parse_iso6709, probe_file


def test_h264_aac_clip(library):
    result = probe_file(library["h264"])
    f = result.file
    assert f["media_kind"] == "video"
    assert f["video_codec"] == "h264" and f["audio_codec"] == "aac"
    assert f["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert (f["width"], f["height"]) == (320, 240)
    assert f["fps_avg"] == pytest.approx(25.0) and not f["is_vfr"]
    assert f["creation_time"] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    types = [s["stream_type"] for s in result.streams]
    assert types == ["video", "audio"]
    audio = result.streams[1]
    assert (audio["channels"], audio["channel_layout"], audio["sample_rate"]) == (
        2,
        "stereo",
        48000,
    )
    video = result.streams[0]
    assert video["pix_fmt"] == "yuv420p" and video["bit_depth"] == 8 and video["frames"] == 75


def test_prores_is_10_bit_422(library):
    video = probe_file(library["prores"]).streams[0]
    assert video["codec"] == "prores"
    assert video["pix_fmt"] == "yuv422p10le" and video["bit_depth"] == 10
    assert video["profile"] == "Standard"


def test_rotation_swaps_display_size(library):
    f = probe_file(library["rotated"]).file
    assert f["rotation"] == 90
    assert (f["width"], f["height"]) == (320, 240)
    assert (f["display_width"], f["display_height"]) == (240, 320)


def test_vfr_detected_and_cfr_not(library):
    vfr = probe_file(library["vfr"]).file
    assert vfr["is_vfr"] is True
    assert vfr["fps_avg"] != pytest.approx(30.0)
    assert probe_file(library["h264"]).file["is_vfr"] is False


def test_audio_only(library):
    f = probe_file(library["audio"]).file
    assert f["media_kind"] == "audio"
    assert f["video_streams"] == 0 and f["audio_streams"] == 1 and f["width"] is None


def test_still_image_exif(library):
    f = probe_file(library["still"]).file
    assert f["media_kind"] == "image" and f["duration_s"] is None
    assert (f["make"], f["model"]) == ("TestCam", "Model 1")
    assert f["creation_time"] == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_hdr_flag_from_transfer(tmp_path):
    import av

    path = tmp_path / "hlg.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        s.codec_context.color_trc = 18  # arib-std-b67 (HLG)
        s.codec_context.color_primaries = 9
        s.codec_context.colorspace = 9
        for i in range(5):
            frame = mf.av.VideoFrame.from_ndarray(mf.bars_frame(64, 64, i), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    f = probe_file(path)
    assert f.file["hdr"] is True and f.file["hdr_format"] == "HLG"
    assert f.streams[0]["color_transfer"] == "arib-std-b67"
    assert f.streams[0]["color_primaries"] == "bt2020"


@pytest.mark.parametrize(
    ("name", "error_type", "words"),
    [
        ("empty", "EmptyFile", "0 bytes"),
        ("text", "NotMedia", "not a media file"),
        ("truncated", "Truncated", "cut short"),
        ("corrupt", "Corrupt", "could not read"),
    ],
)
def test_bad_files_explain_themselves(bad_files, name, error_type, words):
    with pytest.raises(MediaError) as info:
        probe_file(bad_files[name])
    assert info.value.error_type == error_type
    assert words in str(info.value)


def test_mp4_without_index_is_truncated(tmp_path, library):
    # Keep only the first box (ftyp): the moov index never got written.
    data = library["h264"].read_bytes()
    size = int.from_bytes(data[:4], "big")
    path = tmp_path / "interrupted.mp4"
    path.write_bytes(data[:size])
    with pytest.raises(MediaError, match="moov"):
        probe_file(path)


def test_parsers():
    assert parse_iso6709("+37.3349-122.0090+000.000/") == (37.3349, -122.009)
    assert parse_iso6709("nonsense") == (None, None)
    assert parse_datetime("2024:05:06 07:08:09") == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert parse_datetime("1904-01-01T00:00:00Z") is None
    assert parse_datetime("2020-01-02T03:04:05+02:00").utcoffset().total_seconds() == 7200


def test_anamorphic_display_size(tmp_path):
    from fractions import Fraction

    import av

    path = tmp_path / "hdv_like.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 96, 72, "yuv420p"
        s.codec_context.sample_aspect_ratio = Fraction(4, 3)  # 1440x1080 shown as 1920x1080
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(mf.bars_frame(96, 72, i), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    f = probe_file(path).file
    assert (f["width"], f["height"]) == (96, 72)
    assert (f["display_width"], f["display_height"]) == (128, 72)


def test_decompression_bomb_guard_is_respected(tmp_path):
    """Pillow refuses images past its pixel limit; that refusal once fell through to a full
    decode by PyAV (a 190-megapixel panorama is 570 MB of RGB)."""
    from PIL import Image

    from dam_assets.media.errors import MediaError
    from dam_assets.media.thumbnails import image_thumbnails

    path = tmp_path / "panorama.png"
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 100
    Image.new("1", (side, side)).save(path)  # 1 bit per pixel: cheap to make, tiny on disk
    with pytest.raises(MediaError) as caught:
        image_thumbnails(path, tmp_path / "thumbs")
    assert caught.value.error_type == "ImageTooLarge"
    assert not (tmp_path / "thumbs").exists()
