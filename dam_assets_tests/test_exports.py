"""Editor hand-off on a real, indexed library: a 23.976 fps clip with timecode, cuts, speech
and a named person; a 29.97 drop-frame clip whose name is not UTF-8; a camera-rig take.
Every export is read back (OpenTimelineIO's adapters, pycmx for the EDL, the FCPXML's own
rationals) and compared with the catalog frame by frame."""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlparse

import av
import numpy as np
import opentimelineio as otio
import pycmx
import pytest
from dagster import instance_for_test

from dam_assets.cli import main
from dam_assets.cli.runs import index_partitions
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.library.exports import (
    FORMATS,
    ExportError,
    export_moments,
    render,
    session_timeline,
    write_atomic,
)
from dam_assets.library.exports.timecode import exact_rate, parse_rational_seconds, rational_seconds
from dam_assets.library.people import export_people
from dam_assets.media.timecode import parse_timecode, to_frames
from dam_assets.storage import Store

FILM = Fraction(24000, 1001)
NTSC = Fraction(30000, 1001)
SPEECH = "Send the footage to the editor today. The dog runs on the beach."
NTSC_NAME = os.fsdecode(b"ntsc_caf\xe9.mov")  # Latin-1 from an old share: not UTF-8
RIG_YAML = """
rigs:
  - name: stage-e
    root: {root}
    cameras:
      - {{id: A, role: hero, match: "camA/**"}}
      - {{id: B, role: witness, match: "camB/**"}}
      - {{id: C, role: witness, match: "camC/**"}}
      - {{id: D, role: witness, match: "camD/**"}}
      - {{id: X, role: witness, match: "camX/**"}}
"""


def make_clip(path, rate, shots, timecode=None, speech=None, faces=(), size=(640, 360)):
    """H.264/AAC at an exact `rate` (e.g. 24000/1001): flat grey shots (grey, seconds) with
    hard cuts between, faces (shot, colour, centre) the tiny face pack sees, speech or a tone,
    a start timecode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    lengths = [round(shot_s * float(rate)) for _, shot_s in shots]
    seconds = sum(lengths) / float(rate)
    audio_rate = 48000
    sound = mf.speech_samples(speech, audio_rate) if speech else mf.tone(seconds)[0]
    sound = np.concatenate([np.zeros(int(0.3 * audio_rate), np.float32), sound])
    sound = np.pad(sound, (0, max(0, int(seconds * audio_rate) - len(sound))))
    with av.open(str(path), "w") as container:
        if timecode:
            container.metadata["timecode"] = timecode
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast"}
        video.codec_context.gop_size = 12
        audio = container.add_stream("aac", rate=audio_rate, layout="stereo")
        done = 0
        for shot, ((grey, _), length) in enumerate(zip(shots, lengths, strict=True)):
            for i in range(length):
                image = np.full((height, width, 3), grey, np.uint8)
                for face_shot, colour, centre in faces:
                    if face_shot == shot:
                        mf.draw_face(image, centre, colour)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = done + i, 1 / rate
                for packet in video.encode(frame):
                    container.mux(packet)
            done += length
        for packet in video.encode(None):
            container.mux(packet)
        mf._mux_audio(container, audio, np.tile(sound[: int(seconds * audio_rate)] * 0.8, (2, 1)))
    return mf.age(path)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    """Generated once, indexed once through a real Dagster instance for the whole module."""
    base = tmp_path_factory.mktemp("exports")
    root = base / "media"
    shots = [(30, 2.0), (200, 2.0), (40, 2.0), (210, 2.0)]  # a person needs 3 face tracks
    faces = [(shot, "red", (160, 128)) for shot in (1, 2, 3)]
    film = make_clip(root / "film.mov", FILM, shots, "01:00:00:00", SPEECH, faces)
    ntsc = make_clip(
        root / NTSC_NAME, NTSC, [(60, 1.5), (200, 1.5)], "01:00:00;00", size=(320, 240)
    )
    tone = mf.age(mf.make_audio(root / "tone.m4a", seconds=2.0))
    stage = base / "stage"
    master = mf.clap_track(40, seed=5)
    day = "2024-05-01T10:00:{:06.3f}Z"
    rig = {
        "A": mf.make_rig_clip(stage / "camA" / "A001.mov", master, 48000, 0.0, 30,
                              metadata={"timecode": "10:00:00:00", "creation_time": day.format(0)}),
        "B": mf.make_rig_clip(stage / "camB" / "B001.mp4", master, 48000, 1.234, 8, rate=44100,
                              metadata={"creation_time": day.format(1.5)}),
        "C": mf.make_rig_clip(stage / "camC" / "C001.mp4", master, 48000, 3.5, 24, drift_ppm=150,
                              metadata={"creation_time": day.format(3.0)}),
        "D": mf.make_rig_clip(stage / "camD" / "D001.mov", None, 48000, 0, 4,
                              metadata={"timecode": "10:00:02:00", "creation_time": day.format(2)}),
        "X": mf.make_rig_clip(stage / "camX" / "X001.mp4", mf.clap_track(10, seed=99), 48000, 0,
                              6, metadata={"creation_time": day.format(5.0)}),
    }  # fmt: skip
    for path in rig.values():
        mf.age(path)
    (base / "rigs.yaml").write_text(RIG_YAML.format(root=stage))
    (base / "dh").mkdir()
    with pytest.MonkeyPatch.context() as mp, instance_for_test(temp_dir=str(base / "dh")) as inst:
        mp.setenv("DAM_DATA_DIR", str(base / "data"))
        mp.setenv("DAGSTER_HOME", str(base / "dh"))
        mp.setenv("DAM_RIGS", str(base / "rigs.yaml"))
        store = Store(base / "data")
        report = scan([root, stage], store, settle_seconds=0)
        outcome = index_partitions(report.checksums, store, instance=inst, say=str)
        assert not outcome.failed_runs
        [person] = store.sql("SELECT person_id FROM people WHERE faces > 0").to_pylist()
        store.people.label(person["person_id"], "Ruby")
        export_people(store)
        yield {
            "store": store,
            "out": base / "out",
            "film": film,
            "ntsc": ntsc,
            "tone": tone,
            "rig": rig,
            "by_path": report.by_path,
        }


def catalog(store: Store, checksum: str) -> dict:
    """What the catalog says of a file, as an editor counts it (computed here, independently
    of the exporter): exact rate, first frame from the timecode, length in frames."""
    probe = store.sql("SELECT * FROM probe WHERE checksum = ?", [checksum]).to_pylist()[0]
    [frames] = store.sql(
        "SELECT frames FROM streams WHERE checksum = ? AND stream_type = 'video'", [checksum]
    ).to_pylist()
    rate = {23.976: FILM, 29.97: NTSC, 25.0: Fraction(25)}[round(probe["fps_avg"], 3)]
    tc = parse_timecode(probe["timecode"], float(rate)) if probe["timecode"] else None
    return {
        "rate": rate,
        "start": to_frames(tc, float(rate)) if tc else 0,
        "frames": frames["frames"],
        "drop": bool(tc and tc.drop_frame),
    }


def checksum_of(lib, path: Path) -> str:
    return lib["by_path"][str(path)]


def url_bytes(url: str) -> bytes:
    return unquote_to_bytes(urlparse(url).path)


def dam(*args: str) -> int:
    return main([str(a) for a in args])


def test_adapters_are_found_by_their_entry_points():
    by_suffix = {s: a.name for a in otio.plugins.ActiveManifest().adapters for s in a.suffixes}
    assert {k: by_suffix[k] for k in ("otio", "fcpxml", "xml", "edl", "ale")} == {
        "otio": "otio_json",
        "fcpxml": "fcpx_xml",
        "xml": "fcp_xml",
        "edl": "cmx_3600",
        "ale": "ale",
    }


def test_timecode_helpers():
    assert exact_rate(23.976024) == FILM and exact_rate(29.97003) == NTSC
    assert exact_rate(25.0) == 25 and exact_rate(12.5) == Fraction(25, 2)
    assert rational_seconds(86400, FILM) == "18018/5s" and rational_seconds(50, 25) == "2s"
    assert parse_rational_seconds("1001/24000s") * FILM == 1


# -- reading exports back -------------------------------------------------------------------------
def otio_clips(timeline, relative_markers: bool = False) -> list[dict]:
    """Clips of a timeline read back: where they sit, their source frames, their markers.
    `relative_markers`: the format counts markers from the media's start (FCP 7 XML)."""
    out = []
    for track in timeline.tracks:
        for clip in track.find_clips():
            source = clip.source_range
            rate = source.start_time.rate
            shift = clip.media_reference.available_range.start_time.value if relative_markers else 0
            out.append(
                {
                    "track": track.name,
                    "kind": track.kind,
                    "name": clip.name,
                    "url": clip.media_reference.target_url,
                    "rate": exact_rate(rate),
                    "in": source.start_time.value,
                    "frames": source.duration.value,
                    "at": track.range_of_child(clip).start_time,
                    "markers": [
                        (m.name, m.marked_range.start_time.value + shift, m.comment)
                        for m in clip.markers
                    ],
                }
            )
    return out


def fcpxml_clips(root: ET.Element, parent: ET.Element) -> list[dict]:
    """asset-clips under `parent`, every time turned into frames with exact rationals."""
    frame = {
        f.get("id"): parse_rational_seconds(f.get("frameDuration")) for f in root.iter("format")
    }
    assets = {a.get("id"): a for a in root.iter("asset")}
    sequence_frame = frame[next(root.iter("sequence")).get("format")]
    out = []
    for element in parent.iter("asset-clip"):
        asset = assets[element.get("ref")]
        own = frame[asset.get("format")]

        def frames(text, unit):
            value = parse_rational_seconds(text) / unit
            assert value.denominator == 1, (text, unit)  # on the frame grid, exactly
            return int(value)

        out.append(
            {
                "name": element.get("name"),
                "url": asset.get("src"),
                "rate": 1 / own,
                "asset_start": frames(asset.get("start"), own),
                "in": frames(element.get("start"), own),
                "frames": frames(element.get("duration"), sequence_frame),
                "at": frames(element.get("offset"), sequence_frame),
                "lane": element.get("lane"),
                "tc_format": element.get("tcFormat"),
                "markers": [
                    (m.get("value"), frames(m.get("start"), own), m.get("note"))
                    for m in element.findall("marker")
                ],
            }
        )
    return out


def expected_markers(store: Store, checksum: str, clock: dict) -> list[tuple[str, int]]:
    """(name, absolute source frame) of every marker a file export must carry, from the
    catalog's rows: capture facts, scene cuts, transcript segments, named people."""
    rate, start = clock["rate"], clock["start"]
    marks = [("Capture facts", start)]
    marks += [
        (f"Scene {r['scene_index'] + 1}", start + r["start_frame"])
        for r in store.sql("SELECT * FROM scenes WHERE checksum = ?", [checksum]).to_pylist()
    ]
    marks += [
        (r["text"].strip(), start + round(r["start_s"] * float(rate)))
        for r in store.sql(
            "SELECT * FROM transcript_segments WHERE checksum = ?", [checksum]
        ).to_pylist()
    ]
    marks += [
        ("Ruby", start + round(r["start_s"] * float(rate)))
        for r in store.sql(
            "SELECT min(start_s) AS start_s FROM face_clusters WHERE checksum = ?", [checksum]
        ).to_pylist()
        if r["start_s"] is not None
    ]
    return sorted(marks, key=lambda m: (m[1], m[0]))


def same_markers(found, expected) -> bool:
    """Every expected marker, at its frame, named as expected (EDLs upper-case names and
    append the comment)."""
    got = sorted((int(at), name.upper()) for name, at, *_ in found)
    want = sorted((at, name.upper()) for name, at in expected)
    return len(got) == len(want) and all(
        g_at == w_at and g_name.startswith(w_name[:30])
        for (g_at, g_name), (w_at, w_name) in zip(got, want, strict=True)
    )


# -- one file -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["otio", "xml", "fcpxml", "edl", "ale", "csv", "json"])
def test_file_export_reads_back_frame_exact(lib, fmt):
    store, film = lib["store"], lib["film"]
    checksum = checksum_of(lib, film)
    clock = catalog(store, checksum)
    assert (clock["rate"], clock["start"], clock["frames"]) == (FILM, 86400, 192)
    markers = expected_markers(store, checksum, clock)
    assert {"Capture facts", "Scene 4", "Ruby"} <= {m[0] for m in markers}
    assert any("footage" in m[0].lower() for m in markers)  # a transcript segment
    out = lib["out"] / "file"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"film.{fmt}"
    assert dam("export", "file", film, "-o", path) == 0
    want = {"name": "film.mov", "in": 86400, "frames": 192, "rate": FILM}
    if fmt in ("otio", "xml", "edl", "ale"):
        extra = {"rate": float(FILM)} if fmt in ("edl", "ale") else {}
        read = otio.adapters.read_from_file(str(path), **extra)
        timeline = read if fmt != "ale" else None
        clips = otio_clips(timeline, relative_markers=fmt == "xml") if timeline else []
        if fmt == "ale":
            clips = [
                {"name": c.name, "rate": exact_rate(c.source_range.start_time.rate),
                 "in": c.source_range.start_time.value, "frames": c.source_range.duration.value,
                 "url": c.media_reference.target_url, "ale": dict(c.metadata["ALE"])}
                for c in read.find_clips()
            ]  # fmt: skip
        video = [c for c in clips if c.get("kind", "Video") == "Video"]
        assert len(video) == 1
        got = video[0]
        assert {k: got[k] for k in want} == want
        if fmt in ("otio", "xml"):
            assert url_bytes(got["url"]) == os.fsencode(film)
            assert same_markers(got["markers"], markers), (got["markers"], markers)
        if fmt == "edl":
            assert same_markers(got["markers"], markers), (got["markers"], markers)
            text = path.read_text()
            assert "FCM: NON-DROP FRAME" in text and f"FROM CLIP: {film.as_uri()}" in text
            [event] = list(pycmx.parse_cmx3600(io.StringIO(text)).events)
            [edit] = event.edits
            assert (edit.source_in, edit.source_out) == ("01:00:00:00", "01:00:08:00")
            assert edit.clip_name == "film.mov" and edit.channels.video
        if fmt == "ale":
            assert "FPS\t23.976\n" in path.read_text()
            assert got["ale"]["Source Path"] == str(film) and got["ale"]["Tracks"] == "VA1A2"
            assert "Ruby" in got["ale"]["Comments"] and "Scene 4" in got["ale"]["Comments"]
    elif fmt == "fcpxml":
        root = ET.parse(path).getroot()
        assert root.get("version") == "1.8"
        assert next(root.iter("format")).get("frameDuration") == "1001/24000s"
        [got] = fcpxml_clips(root, root.find(".//spine"))
        assert got["asset_start"] == 86400 and got["at"] == 0 and got["tc_format"] == "NDF"
        assert {k: got[k] for k in want} == want
        assert url_bytes(got["url"]) == os.fsencode(film)
        assert same_markers(got["markers"], markers)
        # OpenTimelineIO's own FCP X reader counts 23.976 as 23 fps; it reads the structure
        [timeline] = list(otio.adapters.read_from_file(str(path)).find_children(
            descended_from_type=otio.schema.Timeline))  # fmt: skip
        [clip] = timeline.find_clips()
        assert clip.name == "film.mov" and len(clip.markers) == len(markers)
        assert clip.media_reference.target_url == got["url"]
    else:
        rows = (
            json.loads(path.read_text())["rows"]
            if fmt == "json"
            else list(csv.DictReader(io.StringIO(path.read_text())))
        )
        [clip] = [r for r in rows if r["kind"] == "clip"]
        assert (clip["source_in"], clip["source_out"]) == ("01:00:00:00", "01:00:08:00")
        assert (int(clip["source_in_frame"]), int(clip["source_out_frame"])) == (0, 192)
        assert clip["name"] == "film.mov" and clip["url"] == film.as_uri()
        found = [
            (r["name"], 86400 + int(r["source_in_frame"])) for r in rows if r["kind"] == "marker"
        ]
        assert same_markers(found, markers)


def test_file_export_subclips_per_scene(lib):
    store, film = lib["store"], lib["film"]
    checksum = checksum_of(lib, film)
    scenes = store.sql(
        "SELECT start_frame, end_frame FROM scenes WHERE checksum = ? ORDER BY scene_index",
        [checksum],
    ).to_pylist()
    assert len(scenes) == 4
    path = lib["out"] / "film-scenes.otio"
    assert dam("export", "file", checksum[:12], "--subclips", "-o", path) == 0
    clips = [c for c in otio_clips(otio.adapters.read_from_file(str(path))) if c["kind"] == "Video"]
    assert [(c["in"], c["frames"]) for c in clips] == [
        (86400 + s["start_frame"], s["end_frame"] - s["start_frame"]) for s in scenes
    ]
    for clip in clips:  # each marker on the scene it falls in
        assert all(clip["in"] <= at < clip["in"] + clip["frames"] for _, at, _ in clip["markers"])
    everything = [m for c in clips for m in c["markers"]]
    assert same_markers(everything, expected_markers(store, checksum, catalog(store, checksum)))
    xml = lib["out"] / "film-scenes.fcpxml"
    assert dam("export", "file", film, "--subclips", "-o", xml) == 0
    root = ET.parse(xml).getroot()
    spine = fcpxml_clips(root, root.find(".//spine"))
    assert [(c["in"], c["at"], c["frames"]) for c in spine] == [
        (86400 + s["start_frame"], s["start_frame"], s["end_frame"] - s["start_frame"])
        for s in scenes
    ]


def test_drop_frame_file_with_a_name_that_is_not_utf8(lib):
    store, ntsc = lib["store"], lib["ntsc"]
    checksum = checksum_of(lib, ntsc)
    clock = catalog(store, checksum)
    assert (clock["rate"], clock["start"], clock["frames"], clock["drop"]) == (
        NTSC,
        107892,  # 01:00:00;00 in drop-frame counting
        90,
        True,
    )
    shown = "ntsc_caf\\xe9.mov"  # readable form; the URL keeps the real byte
    out = lib["out"] / "ntsc"
    out.mkdir(parents=True, exist_ok=True)
    for fmt in ("otio", "xml", "edl", "fcpxml"):
        assert dam("export", "file", checksum, "-o", out / f"n.{fmt}") == 0
    for fmt in ("otio", "xml"):
        [clip] = [
            c
            for c in otio_clips(otio.adapters.read_from_file(str(out / f"n.{fmt}")))
            if c["kind"] == "Video"
        ]
        assert (clip["rate"], clip["in"], clip["frames"], clip["name"]) == (
            NTSC,
            107892,
            90,
            shown,
        )
        assert url_bytes(clip["url"]) == os.fsencode(ntsc) and "%E9" in clip["url"]
    xml = ET.parse(out / "n.xml").getroot()
    timecode = xml.find(".//file/timecode")
    assert (timecode.findtext("string"), timecode.findtext("displayformat")) == (
        "01:00:00;00",
        "DF",
    )
    text = (out / "n.edl").read_text()
    assert "FCM: DROP FRAME" in text
    [event] = list(pycmx.parse_cmx3600(io.StringIO(text)).events)
    assert (event.edits[0].source_in, event.edits[0].source_out) == ("01:00:00;00", "01:00:03;00")
    [clip] = otio.adapters.read_from_file(str(out / "n.edl"), rate=float(NTSC)).find_clips()
    assert (clip.source_range.start_time.value, clip.source_range.duration.value) == (107892, 90)
    root = ET.parse(out / "n.fcpxml").getroot()
    [got] = fcpxml_clips(root, root.find(".//spine"))
    assert (got["rate"], got["in"], got["frames"], got["tc_format"]) == (NTSC, 107892, 90, "DF")
    assert next(root.iter("sequence")).get("tcFormat") == "DF"


def test_sound_alone_is_a_sound_clip(lib):
    """An audio recording has no rate of its own: it is counted at 25 fps, on an audio track."""
    tone = lib["tone"]
    out = lib["out"] / "tone"
    out.mkdir(parents=True, exist_ok=True)
    for fmt in ("otio", "edl", "fcpxml"):
        assert dam("export", "file", tone, "-o", out / f"t.{fmt}") == 0
    [clip] = otio_clips(otio.adapters.read_from_file(str(out / "t.otio")))
    assert (clip["kind"], clip["rate"], clip["in"], clip["frames"]) == ("Audio", 25, 0, 50)
    [event] = list(pycmx.parse_cmx3600(io.StringIO((out / "t.edl").read_text())).events)
    [edit] = event.edits
    assert edit.channels.a1 and not edit.channels.video
    assert (edit.source_in, edit.source_out) == ("00:00:00:00", "00:00:02:00")
    root = ET.parse(out / "t.fcpxml").getroot()
    [asset] = root.iter("asset")
    assert (asset.get("hasVideo"), asset.get("hasAudio"), asset.get("duration")) == ("0", "1", "2s")


# -- search moments -------------------------------------------------------------------------------
def moment_range(store: Store, checksum: str, start: float, end: float, handles: int):
    clock = catalog(store, checksum)
    rate = float(clock["rate"])
    first = min(round(start * rate), clock["frames"] - 1)
    last = min(round(end * rate), clock["frames"] - 1) + 1
    a, b = max(0, first - handles), min(clock["frames"], last + handles)
    return clock["start"] + a, b - a, clock["start"] + first, last - first


def test_moments_by_words_and_by_person(lib):
    from dam_assets.library.people import appearances
    from dam_assets.library.search import search_transcripts

    store, film = lib["store"], lib["film"]
    checksum = checksum_of(lib, film)
    [hit] = search_transcripts("footage")
    path = lib["out"] / "words.otio"
    assert dam("export", "moments", "--text", "footage", "--handles", "12f", "-o", path) == 0
    [clip] = [
        c for c in otio_clips(otio.adapters.read_from_file(str(path))) if c["kind"] == "Video"
    ]
    start, frames, mark_at, _ = moment_range(store, checksum, hit["start"], hit["end"], 12)
    assert (clip["name"], clip["in"], clip["frames"]) == ("film.mov", start, frames)
    [(name, at, comment)] = clip["markers"]
    assert (name, at) == ("footage", mark_at)
    assert hit["text"].strip() in comment and "score" in comment

    person = store.people.resolve("Ruby")
    [[first_s, last_s]] = appearances(store, [person])[person][0]["ranges"]
    edl = lib["out"] / "ruby.edl"
    assert dam("export", "moments", "--person", "Ruby", "-o", edl) == 0  # handles: 2 s
    start, frames, mark_at, _ = moment_range(store, checksum, first_s, last_s, 48)
    [event] = list(pycmx.parse_cmx3600(io.StringIO(edl.read_text())).events)
    assert event.edits[0].source_in == otio.opentime.to_timecode(
        otio.opentime.RationalTime(start, float(FILM)), float(FILM)
    )
    [clip] = otio.adapters.read_from_file(str(edl), rate=float(FILM)).find_clips()
    assert (clip.source_range.start_time.value, clip.source_range.duration.value) == (
        start,
        frames,
    )
    [marker] = clip.markers
    assert marker.name.startswith("RUBY") and marker.marked_range.start_time.value == mark_at


def test_moments_of_mixed_rates_keep_each_files_frames(lib):
    from dam_assets.library.search import search_moments

    store = lib["store"]
    moments = search_moments(text="a red square", limit=6)
    files = {m["checksum"] for m in moments}
    assert len({catalog(store, c)["rate"] for c in files}) > 1  # 23.976, 29.97 and 25
    expected = []
    for m in moments:
        rate = float(catalog(store, m["checksum"])["rate"])
        expected.append(moment_range(store, m["checksum"], m["start"], m["end"], round(rate / 2)))
    fcpxml = lib["out"] / "red.fcpxml"
    args = ("export", "moments", "a red square", "--limit", "6", "--handles", "0.5s")
    assert dam(*args, "-o", fcpxml) == 0
    root = ET.parse(fcpxml).getroot()
    spine = fcpxml_clips(root, root.find(".//spine"))
    assert [(c["in"], c["markers"][0][1]) for c in spine] == [(e[0], e[2]) for e in expected]
    rates = [catalog(store, m["checksum"])["rate"] for m in moments]
    assert [c["rate"] for c in spine] == rates
    ends = [c["at"] + c["frames"] for c in spine]
    assert [c["at"] for c in spine] == [0, *ends[:-1]]  # back to back on the sequence's grid
    xml = lib["out"] / "red.xml"
    assert dam(*args, "-o", xml) == 0
    video = [
        c
        for c in otio_clips(otio.adapters.read_from_file(str(xml)), relative_markers=True)
        if c["kind"] == "Video"
    ]
    assert [(c["rate"], c["in"]) for c in video] == list(
        zip(rates, [e[0] for e in expected], strict=True)
    )
    assert [c["markers"][0][1] for c in video] == [e[2] for e in expected]
    # OTIO's reader takes a clip's length from its place at the sequence's rate (25 fps
    # here); the file's own in and out points are exact
    items = ET.parse(xml).getroot().findall(".//video/track/clipitem")
    assert [int(i.findtext("out")) - int(i.findtext("in")) for i in items] == [
        e[1] for e in expected
    ]
    for fmt in ("edl", "ale"):  # one rate per file: refused, nothing written
        target = lib["out"] / f"red.{fmt}"
        assert dam(*args, "-o", target) == 1 and not target.exists()


# -- capture sessions -----------------------------------------------------------------------------
def test_session_as_synced_multicam(lib, capsys):
    store = lib["store"]
    [session] = store.sql("SELECT session_id FROM capture_sessions").to_pylist()
    session_id = session["session_id"]
    capsys.readouterr()
    assert dam("rigs", "export", session_id) == 0  # without -o: the JSON and CSV exports
    printed = capsys.readouterr().out.split()
    assert printed[0].endswith(".json") and printed[1].endswith(".csv")

    sync = {
        r["camera"]: r
        for r in store.sql(
            "SELECT s.*, g.path FROM capture_sync s JOIN capture_segments g USING (checksum)"
            " WHERE s.session_id = ?",
            [session_id],
        ).to_pylist()
    }
    assert sync["B"]["method"] == "audio" and sync["D"]["method"] == "timecode"
    assert sync["X"]["method"].startswith("times") and sync["C"]["drift_ppm"] is not None
    origin = min(r["offset_s"] for r in sync.values())
    record = {cam: round((r["offset_s"] - origin) * 25) for cam, r in sync.items()}
    assert record["B"] == 31  # 1.234 s after the hero, on the 25 fps grid
    clocks = {cam: catalog(store, r["checksum"]) for cam, r in sync.items()}
    assert clocks["A"]["start"] == 900000 and clocks["D"]["start"] == 900050  # 10:00:02:00

    path = lib["out"] / "session.otio"
    assert dam("rigs", "export", session_id, "-o", path) == 0
    clips = otio_clips(otio.adapters.read_from_file(str(path)))
    video = {c["track"]: c for c in clips if c["kind"] == "Video"}
    assert sorted(video) == ["A", "B", "C", "D", "X"]
    assert sorted(c["track"] for c in clips if c["kind"] == "Audio") == ["A", "B", "C", "X"]
    for cam, clip in video.items():
        assert clip["at"].rescaled_to(25).value == record[cam], cam
        assert (clip["in"], clip["frames"]) == (clocks[cam]["start"], clocks[cam]["frames"])
        assert url_bytes(clip["url"]) == os.fsencode(sync[cam]["path"])
    names = {cam: [m[0] for m in clip["markers"]] for cam, clip in video.items()}
    assert names["A"] == ["Sync: hero (reference)"]
    assert names["B"][0].startswith("Sync: audio")
    assert names["D"][0].startswith("CHECK SYNC") and names["X"][0].startswith("CHECK SYNC")
    assert any(n.startswith("Drift +") for n in names["C"])

    fcpxml = lib["out"] / "session.fcpxml"
    assert dam("rigs", "export", session_id, "-o", fcpxml) == 0
    root = ET.parse(fcpxml).getroot()
    angles = root.findall(".//multicam/mc-angle")
    assert [a.get("name") for a in angles] == ["A", "B", "C", "D", "X"]
    for angle in angles:
        [clip] = fcpxml_clips(root, angle)
        cam = angle.get("name")
        assert (clip["at"], clip["in"]) == (record[cam], clocks[cam]["start"])
        assert clip["frames"] == clocks[cam]["frames"]
    [mc] = root.findall(".//project/sequence/spine/mc-clip")
    assert mc.find("mc-source").get("angleID") == angles[0].get("angleID")
    red = [m for m in root.iter("marker") if m.get("completed") == "0"]
    assert {m.get("value").split(":")[0] for m in red} == {"CHECK SYNC"}
    lanes = root.findall(".//project")[1].find("sequence/spine/gap")
    assert {c["name"]: c["at"] for c in fcpxml_clips(root, lanes)} == {
        Path(sync[cam]["path"]).name: record[cam] for cam in sync
    }
    # OpenTimelineIO reads the lanes project (25 fps: its reader's whole-frame rates suffice)
    timelines = list(
        otio.adapters.read_from_file(str(fcpxml)).find_children(
            descended_from_type=otio.schema.Timeline
        )
    )
    placed = {c["name"]: (c["at"].value, c["in"]) for c in otio_clips(timelines[1])}
    assert placed == {
        Path(r["path"]).name: (record[cam], clocks[cam]["start"]) for cam, r in sync.items()
    }

    xml = lib["out"] / "session.xml"
    assert dam("rigs", "export", session_id, "-o", xml) == 0
    read = otio_clips(otio.adapters.read_from_file(str(xml)))
    assert sorted(
        (c["at"].value, c["in"], c["frames"]) for c in read if c["kind"] == "Video"
    ) == sorted((record[cam], clocks[cam]["start"], clocks[cam]["frames"]) for cam in sync)
    edl = lib["out"] / "session.edl"
    assert dam("rigs", "export", session_id, "-o", edl) == 1 and not edl.exists()


def test_exports_for_a_web_handler(lib):
    """What `dam serve` will call: bytes (or a file object), no file on disk."""
    from dam_assets.library.search import search_transcripts

    store = lib["store"]
    buffer = io.BytesIO()
    hits = search_transcripts("footage")
    data = export_moments(store, hits, buffer, "edl", query="footage")
    assert buffer.getvalue() == data and data.startswith(b"TITLE: dam: footage")
    assert FORMATS["fcpxml"].media_type == "application/xml"
    [session] = store.sql("SELECT session_id FROM capture_sessions").to_pylist()
    timeline = session_timeline(store, session["session_id"])
    data = render(timeline, "otio")
    assert otio.adapters.read_from_string(data.decode(), "otio_json").name == timeline.name
    with pytest.raises(ExportError, match="no session"):
        session_timeline(store, "no-such-session")


# -- writing files --------------------------------------------------------------------------------
def test_written_atomically_never_over_a_file_unless_forced(lib, tmp_path, monkeypatch, capsys):
    film = lib["film"]
    path = tmp_path / "film.otio"
    assert dam("export", "file", film, "-o", path) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert dam("export", "file", film, "--subclips", "-o", path) == 1
    assert "exists; add --force" in capsys.readouterr().err and path.read_bytes() == before
    assert dam("export", "file", film, "--subclips", "-o", path, "--force") == 0
    assert path.read_bytes() != before
    assert dam("export", "file", film, "-o", tmp_path / "no" / "such" / "x.otio") == 1
    assert not (tmp_path / "no").exists()
    assert dam("export", "file", film, "-o", tmp_path / "film.mp4") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.otio"]

    # A full disk cannot be made here: ENOSPC is injected at the boundary, the final fsync.
    def full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "full.xml"
    with pytest.raises(ExportError, match=r"No space left on device.*nothing was written"):
        write_atomic(target, b"<xmeml/>")
    assert dam("export", "file", film, "-o", target) == 1
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.otio"]  # no temporary left


def test_standard_output_and_usage_errors(lib, capsys):
    film = lib["film"]
    capsys.readouterr()
    assert dam("export", "file", film, "-o", "-", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["kind"] == "clip" and rows[0]["name"] == "film.mov"
    out = lib["out"] / "usage.otio"
    assert dam("export", "moments", "-o", out) == 1  # no query
    assert dam("export", "moments", "--text", "a", "--person", "Ruby", "-o", out) == 1
    assert dam("export", "moments", "--text", "footage", "--handles", "-3", "-o", out) == 1
    assert dam("export", "moments", "--person", "Nobody", "-o", out) == 1
    assert dam("export", "moments", "--text", "zebra crossing", "-o", out) == 1  # no hits
    assert dam("export", "file", "/no/such/file.mov", "-o", out) == 1
    assert dam("export", "file", film, "-o", "-") == 1  # standard output needs --format
    assert not out.exists()


def test_timecode_formats_refuse_rates_smpte_has_not():
    """A 10 fps file (screen recordings, time-lapses, the page's person downloads) cannot be
    counted in SMPTE timecode: FCP 7 XML, EDL and ALE say so instead of crashing inside the
    adapter; the other formats carry it."""
    span = otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, 10), otio.opentime.RationalTime(30, 10)
    )
    media = otio.schema.ExternalReference("file:///media/slow.mp4", available_range=span)
    clip = otio.schema.Clip(name="slow.mp4", media_reference=media, source_range=span)
    timeline = otio.schema.Timeline(name="slow")
    timeline.tracks.append(otio.schema.Track(children=[clip]))
    for fmt in ("xml", "edl", "ale"):
        with pytest.raises(ExportError, match=r"SMPTE timecode, which has no 10 fps.*slow\.mp4"):
            render(timeline, fmt)
    [read] = otio.adapters.read_from_string(render(timeline, "otio").decode()).find_clips()
    assert read.source_range == clip.source_range
