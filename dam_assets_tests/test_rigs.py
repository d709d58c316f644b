"""Camera rigs on generated multi-camera captures: known offsets, another sample rate, clock
drift, an unrelated clip, a camera without audio, GoPro chapters, and timecode."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from dam_assets.cli.runs import index_partitions
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.library.rigs import load_rigs
from dam_assets.media import sessions
from dam_assets.media.audio_sync import RATE, measure, scan_track
from dam_assets.media.capture import capture_start, filename_time, gopro_chapter
from dam_assets.media.timecode import from_frames, parse_timecode, to_frames, to_seconds

from .conftest import copy_settled, sensor_tick

FRAME = 1 / 25
RIG_YAML = """
rigs:
  - name: stage-a
    root: {root}
    cameras:
      - {{id: A, role: hero, match: "camA/**"}}
      - {{id: B, role: witness, match: "camB/**"}}
      - {{id: C, role: witness, match: "camC/**"}}
      - {{id: D, role: witness, match: "camD/**"}}
      - {{id: X, role: witness, match: "camX/**"}}
      - {{id: GOPRO, role: witness, match: "gopro/*.MP4"}}
"""


def test_timecode_parsing_and_drop_frame():
    ndf = parse_timecode("10:00:01:05", 25)
    assert to_frames(ndf, 25) == 900030 and to_seconds(ndf, 25) == pytest.approx(36001.2)
    ntsc = 30000 / 1001
    df = parse_timecode("00:01:00;02", ntsc)
    assert df.drop_frame and to_frames(df, ntsc) == 1800
    assert str(from_frames(1800, ntsc, drop_frame=True)) == "00:01:00;02"
    assert to_frames(parse_timecode("00:10:00;00", ntsc), ntsc) == 17982
    assert to_seconds(parse_timecode("01:00:00;00", ntsc), ntsc) == pytest.approx(3599.9964)
    for n in (0, 1799, 1800, 17981, 17982, 107891):
        assert to_frames(from_frames(n, ntsc, True), ntsc) == n
    film = 24000 / 1001  # cameras at 23.976 and 25 fps jammed to one clock agree
    assert (
        to_seconds(parse_timecode("10:00:00:00", film), film)
        == to_seconds(parse_timecode("10:00:00:00", 25), 25)
        == 36000
    )
    with pytest.raises(ValueError):
        parse_timecode("00:01:00;00", ntsc)  # dropped frame number
    with pytest.raises(ValueError):
        parse_timecode("10:00:00:25", 25)


def test_chapter_and_filename_patterns():
    assert gopro_chapter("GH010123.MP4").group == gopro_chapter("GH020123.MP4").group
    assert (gopro_chapter("GX030456.MP4").index, gopro_chapter("GX030456.MP4").group) == (
        3,
        "gopro-0456",
    )
    assert gopro_chapter("GOPR0789.MP4").index == 1
    assert gopro_chapter("GP010789.MP4").index == 2
    assert gopro_chapter("GP010789.MP4").group == gopro_chapter("GOPR0789.MP4").group
    assert gopro_chapter("C0001.MP4") is None
    assert filename_time("VID_20240301_123045.mp4") == datetime(2024, 3, 1, 12, 30, 45, tzinfo=UTC)
    assert filename_time("DJI_20240301123045_0001.MP4").minute == 30
    assert filename_time("clip.mov") is None


def test_capture_start_trust_order(tmp_path):
    clip = tmp_path / "C0001.MP4"
    clip.write_bytes(b"")
    created = datetime(2024, 5, 1, 9, 59, 58, tzinfo=UTC)
    by_tc = capture_start(clip, "10:00:00:00", 25.0, created, 20.0, None)
    assert by_tc.source == "timecode" and by_tc.start == datetime(2024, 5, 1, 10, tzinfo=UTC)
    (tmp_path / "C0001M01.XML").write_text(
        '<NonRealTimeMeta xmlns="urn:schemas-professionalDisc:nonRealTimeMeta:ver.2.00">'
        '<LtcChangeTable><LtcChange frameCount="0" value="10302011" status="increment"/>'
        '</LtcChangeTable><CreationDate value="2024-05-01T11:20:30+00:00"/></NonRealTimeMeta>'
    )
    sidecar = capture_start(clip, None, 25.0, None, 20.0, None)
    assert sidecar.source == "timecode" and sidecar.timecode == "11:20:30:10"
    assert capture_start(tmp_path / "x.mov", None, None, created, 20.0, None).source == (
        "creation_time"
    )
    at_stop = capture_start(tmp_path / "x.mov", None, None, created, 20.0, None, True)
    assert at_stop.start == datetime(2024, 5, 1, 9, 59, 38, tzinfo=UTC)
    named = capture_start(tmp_path / "VID_20240301_123045.mp4", None, None, None, 5.0, None)
    assert named.source == "filename"
    assert capture_start(tmp_path / "x.mov", None, None, None, 5.0, 10**18).source == "mtime"


@pytest.fixture(scope="module")
def rig_take(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage-a")
    master = mf.clap_track(80, seed=3)
    day = "2024-05-01T10:00:{:06.3f}Z"
    clips = {
        "A": mf.make_rig_clip(
            root / "camA" / "A001.mov",
            master,
            48000,
            0.0,
            75,
            metadata={"timecode": "10:00:00:00", "creation_time": day.format(0.0)},
        ),
        "B": mf.make_rig_clip(
            root / "camB" / "B001.mp4",
            master,
            48000,
            1.234,
            25,
            rate=44100,
            metadata={"creation_time": day.format(1.5)},
        ),
        "C": mf.make_rig_clip(
            root / "camC" / "C001.mp4",
            master,
            48000,
            3.5,
            65,
            drift_ppm=100,
            metadata={"creation_time": day.format(3.0)},
        ),
        "D": mf.make_rig_clip(
            root / "camD" / "D001.mov",
            None,
            48000,
            0,
            10,
            metadata={"timecode": "10:00:02:00", "creation_time": day.format(2.0)},
        ),
        "X": mf.make_rig_clip(
            root / "camX" / "X001.mp4",
            mf.clap_track(30, seed=99),
            48000,
            0,
            20,
            metadata={"creation_time": day.format(5.0)},
        ),
    }
    gopro = [
        mf.make_rig_clip(
            root / "gopro" / name,
            master,
            48000,
            start,
            6,
            metadata={"creation_time": day.format(start)},
        )
        for name, start in (("GH010042.MP4", 8.0), ("GH020042.MP4", 14.0))
    ]
    for path in [*clips.values(), *gopro]:
        mf.age(path)
    return root, clips, gopro


def _remux(src: Path, dst: Path) -> Path:
    """The same audio packets in another container (stream copy, no re-encode)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def test_long_tracks_keep_no_samples_and_sync_the_same(rig_take, tmp_path):
    """Tracks longer than `keep_s` hold only their onset envelope: fine windows are decoded
    again after a seek, or in one pass from the start where the timestamps cannot place a seek
    to the sample (Matroska's milliseconds), and sync exactly as kept samples do."""
    _, clips, _ = rig_take
    clips = {**clips, "B_mkv": _remux(clips["B"], tmp_path / "B001.mkv")}
    kept = {k: scan_track(clips[k]) for k in ("A", "B", "C", "X", "B_mkv")}
    lean = {k: scan_track(clips[k], keep_s=0) for k in kept}
    for k in kept:
        assert kept[k].samples is not None and lean[k].samples is None, k
        assert lean[k].length == kept[k].length and lean[k].start_s == kept[k].start_s, k
        assert np.array_equal(lean[k].envelope, kept[k].envelope), k
    assert lean["B"].exact_times and not lean["B_mkv"].exact_times
    window = 4 * RATE
    for k in ("B", "B_mkv"):  # a window holds the samples a decode from the start gives there
        for first in (3 * RATE + 5, 11 * RATE, 2 * RATE):  # the last one goes back
            got = lean[k].window(first, window)
            assert len(got) == window, (k, first)
            assert np.abs(got - kept[k].samples[first : first + window]).max() < 0.01, (k, first)
        lean[k].close()
    for k, truth in (("B", 1.234), ("B_mkv", None), ("C", 3.5)):
        whole, windows = measure(kept["A"], kept[k]), measure(lean["A"], lean[k])
        assert len(windows.windows) == len(whole.windows) >= 3, k
        assert windows.offset_s == pytest.approx(whole.offset_s, abs=5e-5), k
        assert windows.drift_ppm == pytest.approx(whole.drift_ppm, abs=1.0), k
        if truth is not None:  # the remux drops the MP4 edit list, and with it AAC priming
            assert windows.offset_s == pytest.approx(truth, abs=0.005), k
    assert measure(lean["A"], lean["X"]).confidence < 0.3


def test_session_past_its_sample_budget_syncs_the_same(rig_take, monkeypatch):
    _, clips, _ = rig_take
    start = datetime(2024, 5, 1, 10, tzinfo=UTC)
    segments = [
        {
            "checksum": camera,
            "path": str(clips[camera]),
            "rig": "stage-a",
            "camera": camera,
            "role": "hero" if camera == "A" else "witness",
            "duration_s": seconds,
            "capture_start": start,
            "start_source": "creation_time",
            "fps": 25.0,
            "timecode": None,
            "has_audio": True,
        }
        for camera, seconds in (("A", 75), ("B", 25), ("C", 65), ("X", 20))
    ]
    held: list = []

    def load(path: str):
        held.append(scan_track(path))
        return held[-1]

    _, kept = sessions.sync_session(segments, load)
    assert all(t.samples is not None for t in held)
    held.clear()
    monkeypatch.setattr(sessions, "KEEP_BYTES", 2_500_000)  # room for A's 75 s, not one more
    _, lean = sessions.sync_session(segments, load)
    assert [t.samples is None for t in held] == [False, True, True, True]
    for a, b in zip(kept, lean, strict=True):
        assert (a.checksum, a.method) == (b.checksum, b.method), (a, b)
        if a.method == "audio":
            assert b.offset_s == pytest.approx(a.offset_s, abs=5e-5), a.checksum
    assert {r.checksum: r.method for r in lean}["B"] == "audio"


def test_rig_sessions_sync_and_exports(rig_take, instance, store, tmp_path, monkeypatch):
    root, clips, _ = rig_take
    (tmp_path / "rigs.yaml").write_text(RIG_YAML.format(root=root))
    monkeypatch.setenv("DAM_RIGS", str(tmp_path / "rigs.yaml"))
    assert load_rigs().by_name("stage-a").camera_for(clips["B"]).id == "B"
    report = scan([root], store, settle_seconds=0)
    outcome = index_partitions(report.checksums, store, instance=instance, say=str)
    assert not outcome.failed_runs

    segments = {
        r["camera"]: r
        for r in store.sql("SELECT * FROM capture_segments").to_pylist()
        if r["camera"] != "GOPRO"
    }
    assert segments["A"]["start_source"] == "timecode" and segments["A"]["timecode"] == (
        "10:00:00:00"
    )
    assert segments["B"]["start_source"] == "creation_time" and segments["B"]["has_audio"]
    assert not segments["D"]["has_audio"]
    [session] = store.sql("SELECT * FROM capture_sessions").to_pylist()
    assert session["segments"] == 7 and session["cameras"] == "A,B,C,D,GOPRO,X"
    sync = {}
    for row in store.sql(
        "SELECT s.*, g.path FROM capture_sync s JOIN capture_segments g USING (checksum)"
    ).to_pylist():
        sync[Path(row["path"]).name] = row
    assert sync["A001.mov"]["method"] == "reference"
    for name, truth in (
        ("B001.mp4", 1.234),
        ("C001.mp4", 3.5),
        ("GH010042.MP4", 8.0),
        ("GH020042.MP4", 14.0),
    ):
        row = sync[name]
        assert row["method"] == "audio", row
        assert row["offset_s"] == pytest.approx(truth, abs=FRAME), (name, row["offset_s"])
        assert row["confidence"] > 0.5 and row["consistent"] is True
    assert abs(sync["B001.mp4"]["offset_s"] - 1.234) < 0.005  # sub-frame, despite AAC priming
    assert sync["C001.mp4"]["drift_ppm"] == pytest.approx(100, abs=25)
    assert sync["D001.mov"]["method"] == "timecode" and sync["D001.mov"]["offset_s"] == (
        pytest.approx(2.0, abs=1e-6)
    )
    assert "no audio" in sync["D001.mov"]["note"]
    unrelated = sync["X001.mp4"]
    assert unrelated["method"].startswith("times") and unrelated["confidence"] < 0.3
    assert unrelated["offset_s"] == pytest.approx(5.0, abs=0.01)
    assert sync["GH010042.MP4"]["take"] == sync["GH020042.MP4"]["take"] == "GOPRO:gopro-0042"

    export = json.loads(Path(session["export_json"]).read_text())
    assert export["hero"]["camera"] == "A" and {c["camera"] for c in export["cameras"]} == {
        "A",
        "B",
        "C",
        "D",
        "GOPRO",
        "X",
    }
    csv_lines = Path(session["export_csv"]).read_text().splitlines()
    assert csv_lines[0].startswith("camera,role,path,timecode,offset_s") and len(csv_lines) == 8

    from dam_assets.cli import main

    assert main(["rigs", "export", session["session_id"]]) == 0
    assert main(["rigs", "export", "no-such-session"]) == 1


def test_sensor_requests_sessions_after_rig_segments(
    rig_take, instance, data_dir, tmp_path, monkeypatch, capsys
):
    from dagster import SensorResult

    from dam_assets.cli import main
    from dam_assets.definitions import defs

    root, _, _ = rig_take
    (tmp_path / "rigs.yaml").write_text(RIG_YAML.format(root=root))
    monkeypatch.setenv("DAM_RIGS", str(tmp_path / "rigs.yaml"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()

    def tick(cursor=None):
        return sensor_tick(instance, data_dir, inbox, cursor)[0]

    first = tick()  # the rig root is watched too
    [add] = first.dynamic_partitions_requests
    assert len(add.partition_keys) == 7
    instance.add_dynamic_partitions("media", list(add.partition_keys))
    job = defs.resolve_job_def("index_media")
    for request in first.run_requests:
        assert job.execute_in_process(instance=instance, tags=request.tags).success
    second = tick(first.cursor)
    assert isinstance(second, SensorResult)
    # new videos also ask for a new near-duplicate grouping
    [sessions] = [r for r in second.run_requests if r.job_name != "find_near_duplicates"]
    assert sessions.job_name == "sync_capture_sessions"
    assert (
        defs.resolve_job_def("sync_capture_sessions").execute_in_process(instance=instance).success
    )
    assert not isinstance(tick(second.cursor), SensorResult)  # sessions are current now
    capsys.readouterr()
    assert main(["rigs", "sessions", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["segments"] == 7 and len(listed["sync"]) == 7


def test_card_offload_ingested_with_rig(rig_take, instance, store, tmp_path, monkeypatch):
    from dam_assets.cli import main

    root, clips, _ = rig_take
    (tmp_path / "rigs.yaml").write_text(RIG_YAML.format(root=root))
    monkeypatch.setenv("DAM_RIGS", str(tmp_path / "rigs.yaml"))
    card = tmp_path / "offload" / "card7"
    copy = copy_settled(clips["B"], card / "camB" / "B001.mp4")  # not under the rig root
    assert main(["ingest", str(card)]) == 0
    assert store.sql("SELECT count(*) n FROM capture_segments").to_pylist() == [{"n": 0}]
    assert main(["ingest", str(card), "--rig", "stage-a"]) == 0
    [row] = store.sql("SELECT path, rig, camera, role FROM capture_segments").to_pylist()
    assert row == {"path": str(copy), "rig": "stage-a", "camera": "B", "role": "witness"}
    assert main(["ingest", str(card), "--rig", "no-such-rig"]) == 1


def test_a_rig_name_cannot_steer_an_export_path(tmp_path):
    """Session ids and export file names start with the rig's name."""
    config = tmp_path / "rigs.yaml"
    for name in ("../../etc/evil", "a/b", ".hidden", "stage a"):
        config.write_text(f"rigs:\n  - name: '{name}'\n    root: {tmp_path}\n    cameras: []\n")
        with pytest.raises(ValueError, match="rig name"):
            load_rigs(config)
    config.write_text(f"rigs:\n  - name: stage-a.2\n    root: {tmp_path}\n    cameras: []\n")
    assert load_rigs(config).by_name("stage-a.2").root == tmp_path.resolve()


def test_sync_follows_drift_over_a_long_take():
    """At 150 ppm over 45 minutes the lag moves by 0.4 s: the whole take's
    coarse lag is then outside the fine search at its ends. Each window finds its own coarse
    lag from the envelope around it (it once kept only the middle windows, and over 8 hours
    lost them all)."""
    from dam_assets.media import audio_sync as sync

    rate, minutes, drift, offset = sync.RATE, 45, 150e-6, 3.5
    rng = np.random.default_rng(7)
    clicks = np.cumsum(rng.uniform(0.4, 2.5, int(minutes * 60 / 1.4)))
    clicks = clicks[clicks < minutes * 60 - 10]
    burst = rng.standard_normal((len(clicks), 160)).astype(np.float32)  # 20 ms each
    burst *= rng.uniform(0.2, 1.0, (len(clicks), 1)).astype(np.float32)

    def track(times: np.ndarray) -> sync.Track:
        samples = np.zeros(int(minutes * 60 * rate), np.float32)
        samples += rng.standard_normal(len(samples)).astype(np.float32) * 1e-3  # room tone
        for at, b in zip((times * rate).astype(int), burst, strict=True):
            if 0 <= at < len(samples) - 160:
                samples[at : at + 160] += b
        envelope = sync._onset(sync._log_energy(samples, int(rate * sync.HOP_S)))
        return sync.Track("synthetic", 0, 0.0, len(samples), envelope, samples)

    ref = track(clicks)
    other = track((clicks - offset) * (1 + drift))  # starts later, its clock runs fast
    result = sync.measure(ref, other)
    assert len(result.windows) >= 10  # the windows at both ends found their lag too
    assert result.offset_s == pytest.approx(offset, abs=0.002)
    assert result.drift_ppm == pytest.approx(drift * 1e6, rel=0.02)
