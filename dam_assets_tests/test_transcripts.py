"""faster-whisper on speech synthesized by espeak-ng, with the bundled tiny.en model."""

from __future__ import annotations

import difflib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey

from dam_assets.cli.runs import index_partitions
from dam_assets.definitions import defs
from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from dam_assets.defs.common.ranges import contiguous_batches, range_tags
from dam_assets.defs.resources import WhisperConfig
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.library.search import search_transcripts
from dam_assets.media.audio_stream import BLOCK_S
from dam_assets.media.transcribe import (
    CAPTION_MAX_S,
    SAMPLE_RATE,
    WhisperSettings,
    load_audio,
    stream_audio,
    to_srt,
    to_vtt,
    transcribe,
    transcribe_file,
)
from dam_assets.models.base import ModelUnavailable
from dam_assets.models.whisper import load_whisper, resolve_whisper_model

from .conftest import copy_settled

SPOKEN = "Please send the footage to the editor tomorrow morning."
SPOKEN_WORDS = {"send", "footage", "tomorrow", "morning"}
TALK = (  # about 54 s of espeak-ng speech, with the pauses of ordinary sentences
    "The morning train was late again, so Maria walked down to the harbor instead. She bought"
    " a coffee from the small kiosk by the ferry terminal and watched the fishing boats come in."
    " The air smelled of salt and diesel, and the gulls were loud above the nets. At nine"
    " o'clock her phone rang. It was her brother, asking whether she could pick up the children"
    " after school on Thursday, because his meeting in the city had been moved. She said yes,"
    " of course, and reminded him to bring the blue bag with the swimming things. Then she"
    " finished her coffee, checked the timetable one more time, and walked up the hill towards"
    " the old library, where the new exhibition about the history of the town opens next week."
    " The library closes at six, so there is time for a walk along the river first."
)


@pytest.fixture(scope="session")
def speech_clip(tmp_path_factory) -> Path:
    return mf.age(mf.make_speech_video(tmp_path_factory.mktemp("speech") / "memo.mp4", SPOKEN))


@pytest.fixture(scope="session")
def talk(tmp_path_factory) -> Path:
    return mf.make_speech_video(tmp_path_factory.mktemp("talk") / "talk.mp4", TALK, size=(64, 48))


@pytest.fixture(scope="session")
def whisper(tmp_path_factory):
    return load_whisper(WhisperSettings(), tmp_path_factory.mktemp("models"))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_transcribes_synthesized_speech(whisper, speech_clip):
    result = transcribe(whisper, load_audio(speech_clip), WhisperSettings())
    assert result.status == "ok" and result.language == "en"
    text = " ".join(s["text"] for s in result.segments)
    assert _words(text) >= SPOKEN_WORDS, text
    assert result.words and all(w["start_s"] <= w["end_s"] for w in result.words)
    assert 0.0 <= result.segments[0]["start_s"] < result.segments[-1]["end_s"] <= result.duration_s
    assert result.realtime_factor > 1


def test_batched_and_sequential_decoding_hear_the_same_words(whisper, talk):
    """Batched decoding (the default) gives one faster-whisper segment per speech chunk of up
    to 30 s; its captions are cut at sentences and pauses, so cues stay short, in order, and
    cover the words. One window after another (batch_size 1) hears the same words."""
    batched = transcribe_file(whisper, talk, WhisperSettings())
    sequential = transcribe_file(whisper, talk, WhisperSettings(batch_size=1))
    assert batched.status == sequential.status == "ok"
    assert WhisperSettings().fingerprint() == WhisperSettings(batch_size=1).fingerprint()
    lengths = [s["end_s"] - s["start_s"] for s in batched.segments]
    assert len(batched.segments) >= 5 and max(lengths) <= CAPTION_MAX_S + 0.01, lengths
    for a, b in itertools.pairwise(batched.segments):
        assert b["start_s"] >= a["end_s"] - 0.05 and b["segment_index"] > a["segment_index"]
    by_segment = {s["segment_index"]: s for s in batched.segments}
    for w in batched.words:  # every word lies inside the cue it belongs to
        cue = by_segment[w["segment_index"]]
        assert cue["start_s"] - 0.01 <= w["start_s"] <= w["end_s"] <= cue["end_s"] + 0.01
    said = [_normal(w["word"]) for w in sequential.words]
    heard = [_normal(w["word"]) for w in batched.words]
    assert difflib.SequenceMatcher(None, said, heard).ratio() > 0.85


def test_silence_is_an_empty_transcript_not_an_error(whisper):
    result = transcribe(whisper, np.zeros(16000 * 2, np.float32), WhisperSettings())
    assert result.status == "silent" and result.segments == []


def test_streamed_decode_is_faster_whisper_decode(talk):
    from faster_whisper.audio import decode_audio

    blocks = list(stream_audio(talk))
    assert len(blocks) > 1 and max(map(len, blocks)) < (BLOCK_S + 1) * SAMPLE_RATE
    assert np.array_equal(np.concatenate(blocks), decode_audio(str(talk)))


def test_short_file_is_one_window_like_the_whole_track(whisper, speech_clip):
    from faster_whisper.audio import decode_audio

    streamed = transcribe_file(whisper, speech_clip, WhisperSettings())
    whole = transcribe(whisper, decode_audio(str(speech_clip)), WhisperSettings(), window_s=None)
    assert streamed.status == whole.status == "ok" and streamed.cuts == []
    assert streamed.segments == whole.segments and streamed.words == whole.words
    assert (streamed.language, streamed.duration_s) == (whole.language, whole.duration_s)


def _normal(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def test_long_recording_is_cut_in_pauses_on_one_clock(whisper, talk):
    """20 s windows on ~54 s of speech: every cut lies in a pause of the audio itself, and the
    words after each cut keep the times the whole-track transcription gives them."""
    settings = WhisperSettings()
    whole = transcribe_file(whisper, talk, settings, window_s=None)
    windowed = transcribe_file(whisper, talk, settings, window_s=20)
    audio = load_audio(talk)
    duration = len(audio) / SAMPLE_RATE
    bounds = [0.0, *windowed.cuts, duration]
    assert len(windowed.cuts) >= 2 and all(0 < b - a <= 20 for a, b in itertools.pairwise(bounds))
    loud = float(np.abs(audio).max())
    for cut in windowed.cuts:  # no word is split: the audio is near-silent around each cut
        around = audio[int((cut - 0.05) * SAMPLE_RATE) : int((cut + 0.05) * SAMPLE_RATE)]
        assert float(np.abs(around).max()) < 0.05 * loud, (cut, float(np.abs(around).max()))
    assert windowed.status == "ok" and windowed.language == "en"
    starts = [w["start_s"] for w in windowed.words]
    assert starts == sorted(starts)
    assert all(0 <= w["start_s"] <= w["end_s"] <= duration for w in windowed.words)
    for a, b in itertools.pairwise(windowed.segments):
        assert b["start_s"] >= a["end_s"] - 0.05, (a, b)

    match = difflib.SequenceMatcher(
        None,
        [_normal(w["word"]) for w in whole.words],
        [_normal(w["word"]) for w in windowed.words],
    )
    pairs = [
        (whole.words[block.a + k], windowed.words[block.b + k])
        for block in match.get_matching_blocks()
        if block.size >= 3
        for k in range(block.size)
    ]
    assert len(pairs) >= 0.8 * len(whole.words)
    errors = [abs(a["start_s"] - b["start_s"]) for a, b in pairs]
    assert float(np.median(errors)) < 0.1 and max(errors) < 1.0
    for cut, end in itertools.pairwise([*windowed.cuts, duration]):
        assert sum(1 for _, b in pairs if cut < b["start_s"] < end) >= 5  # each later window


def test_silence_found_window_by_window(whisper, tmp_path):
    quiet = mf.make_audio(tmp_path / "tone.wav", seconds=5, codec="pcm_s16le", silent=True)
    silent = transcribe_file(whisper, quiet, WhisperSettings(), window_s=1)
    assert silent.status == "silent" and silent.segments == [] and len(silent.cuts) >= 4
    assert silent.duration_s == pytest.approx(5, abs=0.05)
    late = mf.make_speech_video(tmp_path / "late.mp4", SPOKEN, size=(64, 48), lead_s=12)
    heard = transcribe_file(whisper, late, WhisperSettings(), window_s=10)
    assert heard.status == "ok" and heard.language == "en" and len(heard.cuts) == 1
    assert _words(" ".join(s["text"] for s in heard.segments)) >= SPOKEN_WORDS
    assert heard.segments[0]["start_s"] >= 11.5 and heard.words[0]["start_s"] >= 11.5


def test_captions_parse():
    segments = [
        {"start_s": 0.5, "end_s": 2.25, "text": "Hello there."},
        {"start_s": 61.0, "end_s": 3725.5, "text": "Much later."},
    ]
    vtt = to_vtt(segments).splitlines()
    assert vtt[0] == "WEBVTT" and vtt[2] == "00:00:00.500 --> 00:00:02.250"
    assert "00:01:01.000 --> 01:02:05.500" in vtt
    srt = to_srt(segments).split("\n\n")
    assert srt[0].splitlines() == ["1", "00:00:00,500 --> 00:00:02,250", "Hello there."]
    assert srt[1].splitlines()[0] == "2"


def test_missing_model_says_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ModelUnavailable, match=r"model\.bin"):
        resolve_whisper_model(str(tmp_path / "no-model-here"), tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on a machine without network
    with pytest.raises(ModelUnavailable) as info:
        resolve_whisper_model("small.en", tmp_path / "models")
    message = str(info.value)
    assert "huggingface-cli download Systran/faster-whisper-small.en" in message
    assert str(tmp_path / "models" / "whisper" / "small.en") in message


def test_bundled_tiny_en_resolves_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (resolve_whisper_model("tiny.en", tmp_path) / "model.bin").is_file()


def test_transcripts_asset_captions_search_and_idempotency(
    instance, store, tmp_path, speech_clip, library
):
    root = tmp_path / "w"
    for clip in (speech_clip, library["vfr"], library["still"]):  # vfr clip has no audio track
        copy_settled(clip, root / clip.name)
    silent = mf.age(
        mf.make_audio(root / "room_tone.wav", seconds=3, codec="pcm_s16le", silent=True)
    )
    report = scan([root], store, settle_seconds=0)
    outcome = index_partitions(report.checksums, store, instance=instance, say=str)
    assert not outcome.failed_runs
    speech_ck = report.by_path[str(root / speech_clip.name)]
    rows = store.sql("SELECT checksum, status FROM transcripts").to_pylist()
    status = {r["checksum"]: r["status"] for r in rows}
    assert status[speech_ck] == "ok"
    assert status[report.by_path[str(silent)]] == "silent"
    assert sorted(status.values()) == ["no_audio", "no_audio", "ok", "silent"]
    vtt = store.captions_dir / f"{speech_ck}.vtt"
    srt = store.captions_dir / f"{speech_ck}.srt"
    assert vtt.read_text().startswith("WEBVTT") and srt.read_text().startswith("1\n")
    assert _words(vtt.read_text()) >= SPOKEN_WORDS
    words = store.sql("SELECT count(*) n FROM transcript_words WHERE checksum = ?", [speech_ck])
    assert words.column("n")[0].as_py() >= 6

    hits = search_transcripts("footage tomorrow")
    assert [h["checksum"] for h in hits] == [speech_ck]
    assert hits[0]["path"] == str(root / speech_clip.name) and hits[0]["end"] > hits[0]["start"]
    assert search_transcripts("zebra") == []

    before = {
        t: store.sql(f"SELECT * FROM {t} ORDER BY ALL")
        for t in ("transcript_segments", "transcript_words")
    }
    ordered = instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME)
    [batch] = contiguous_batches(report.checksums, ordered, 50)
    assert store.sql("SELECT count(*) n FROM ingest_errors").to_pylist() == [{"n": 0}]
    rerun = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(batch),
        asset_selection=[defs.resolve_assets_def("transcripts").key],
    )
    assert rerun.success
    for table, rows in before.items():
        assert store.sql(f"SELECT * FROM {table} ORDER BY ALL").equals(rows), table
    assert len(search_transcripts("footage")) == 1  # the index was replaced, not appended


def test_missing_model_skips_transcripts_not_fails(instance, store, tmp_path, speech_clip):
    """A model that is not installed is "not yet", not a failure: the run succeeds, the
    transcripts partitions stay missing, the skip says what to install, and the rest is done."""
    root = tmp_path / "w"
    copy_settled(speech_clip, root / speech_clip.name)
    report = scan([root], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    job = defs.resolve_job_def("index_media")
    result = job.execute_in_process(
        instance=instance,
        tags=range_tags(report.checksums),
        raise_on_error=False,
        resources={"whisper": WhisperConfig(model=str(tmp_path / "missing-model"))},
    )
    assert result.success
    materialized = {
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    assets = {"probe", "thumbnails", "scenes", "clip_embeddings", "capture_segments"}
    assert assets <= materialized and "transcripts" not in materialized
    [status] = instance.get_status_by_partition(
        AssetKey("transcripts"), report.checksums, media_partitions
    ).values()
    assert status is None  # missing, not failed: a backfill or the nightly fills it in
    assert "model.bin" in store.skips()["transcripts"]["message"]
    assert store.sql("SELECT count(*) n FROM probe").to_pylist() == [{"n": 1}]


def test_dam_search_text_cli(tmp_path, speech_clip):
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAM_DATA_DIR": str(tmp_path / "data")}
    copy_settled(speech_clip, tmp_path / "memos" / "memo.mp4")
    dam = [sys.executable, "-m", "dam_assets.cli"]
    ingest = subprocess.run(
        [*dam, "ingest", str(tmp_path / "memos")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ingest.returncode == 0, ingest.stderr
    found = subprocess.run(
        [*dam, "search", "--text", "sending footage", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    [hit] = json.loads(found.stdout)
    assert {"checksum", "path", "start", "end", "text"} <= set(hit)
    assert hit["path"] == str(tmp_path / "memos" / "memo.mp4") and "footage" in hit["text"]
    text = subprocess.run(
        [*dam, "search", "--text", "footage"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "memo.mp4  0:0" in text.stdout and "footage" in text.stdout

    def filtered(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*dam, "search", "--text", "footage", *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    # the catalog filters hold for words as for meaning (they were ignored: every file came back)
    assert json.loads(filtered("--max-duration", "3600", "--json").stdout) == [hit]
    assert json.loads(filtered("--min-duration", "3600", "--json").stdout) == []
    excluded = filtered("--camera", "no such camera")
    assert excluded.returncode == 0
    assert "No transcript segment contains: footage among the files" in excluded.stdout
