import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime

from dagster import AssetExecutionContext

from ...media.loudness import LoudnessMeter
from ...media.output import write_text
from ...media.transcribe import SAMPLE_RATE, to_srt, to_vtt
from ...models.whisper import WhisperModel
from ...storage.schemas import (
    TIMELINE_AUDIO,
    TRANSCRIPT_SEGMENTS,
    TRANSCRIPT_WORDS,
    TRANSCRIPTS,
    rows_to_table,
)
from ..common.batch import probe_rows, run_per_partition
from ..common.partitions import per_file_asset
from ..common.results import load_or_skip, not_upstream, per_file_results
from ..common.versions import transcripts_version
from ..resources import DamStorage, WhisperConfig
from .probe import probe


@per_file_asset(
    deps=[probe],
    group_name="media",
    kinds={"faster-whisper", "parquet"},
    code_version=transcripts_version(WhisperConfig().settings()),
    pool="transcription",  # dagster.yaml limits each pool to one step at a time
    description="Speech to text with faster-whisper: segments and words with times, language,"
    " WebVTT/SRT captions under captions/, and the full-text index behind `dam search --text`."
    " Files without audio or with silence get an empty transcript marked as such. The same"
    " audio stream gives loudness and silence per second (table `timeline_audio`, in the"
    " `timeline` view).",
)
def transcripts(
    context: AssetExecutionContext, storage: DamStorage, whisper: WhisperConfig
) -> Iterator:
    store = storage.store()
    settings = whisper.settings()
    settings_json = json.dumps(asdict(settings), sort_keys=True)
    keys = list(context.partition_keys)
    probed = probe_rows(store, keys)
    with_audio = [k for k in keys if k in probed and (probed[k]["audio_streams"] or 0) > 0]

    def save(checksum: str, status: str, transcript=None, meter=None) -> None:
        loudness = [
            {"checksum": checksum, **vars(second)} for second in (meter.seconds() if meter else [])
        ]
        store.lake.write_unit("timeline_audio", checksum, rows_to_table(TIMELINE_AUDIO, loudness))
        segments = transcript.segments if transcript else []
        words = transcript.words if transcript else []
        vtt = store.captions_dir / f"{checksum}.vtt"
        srt = store.captions_dir / f"{checksum}.srt"
        if segments:
            write_text(to_vtt(segments), vtt)
            write_text(to_srt(segments), srt)
        else:
            vtt.unlink(missing_ok=True)
            srt.unlink(missing_ok=True)
        tag = {"checksum": checksum}
        store.lake.write_unit(
            "transcript_segments",
            checksum,
            rows_to_table(TRANSCRIPT_SEGMENTS, [{**tag, **s} for s in segments]),
        )
        store.lake.write_unit(
            "transcript_words",
            checksum,
            rows_to_table(TRANSCRIPT_WORDS, [{**tag, **w} for w in words]),
        )
        row = {
            **tag,
            "status": status,
            "language": transcript.language if transcript else None,
            "language_probability": transcript.language_probability if transcript else None,
            "duration_s": transcript.duration_s if transcript else probed[checksum]["duration_s"],
            "speech_s": transcript.speech_s if transcript else 0.0,
            "segments": len(segments),
            "words": len(words),
            "model": settings.model,
            "settings_json": settings_json,
            "realtime_factor": transcript.realtime_factor if transcript else None,
            "vtt_path": str(vtt) if segments else None,
            "srt_path": str(srt) if segments else None,
            "transcribed_at": datetime.now(UTC),  # the text index re-reads changed files
        }
        store.lake.write_unit("transcripts", checksum, rows_to_table(TRANSCRIPTS, [row]))

    model = WhisperModel(settings, store.models_dir)
    if with_audio and load_or_skip(context, store, model) is None:
        return
    for key in set(probed) - set(with_audio):
        save(key, "no_audio")  # not an error: there is nothing to transcribe
    totals = {"media_s": 0.0, "seconds": 0.0, "speech_s": 0.0, "languages": set()}

    def work(checksum: str, path: str) -> dict:
        meter = LoudnessMeter(SAMPLE_RATE)
        transcript = model.transcribe(path, meter)  # streamed: bounded memory
        save(checksum, transcript.status, transcript, meter)
        totals["media_s"] += transcript.duration_s
        totals["seconds"] += transcript.seconds
        totals["speech_s"] += transcript.speech_s
        if transcript.language:
            totals["languages"].add(transcript.language)
        return {
            "status": transcript.status,
            "language": transcript.language or "",
            "segments": len(transcript.segments),
            "speech_s": round(transcript.speech_s, 2),
            "realtime_factor": round(transcript.realtime_factor or 0.0, 2),
        }

    def forget(checksum: str) -> None:
        for table in ("transcripts", "transcript_segments", "transcript_words", "timeline_audio"):
            store.lake.clear_unit(table, checksum)

    outcome = run_per_partition(context, store, "transcripts", with_audio, work, on_failure=forget)
    not_upstream(outcome, keys, set(probed), "probe")
    metadata = outcome.metadata()
    metadata.update(
        model=settings.model,
        speech_seconds=round(totals["speech_s"], 2),
        languages=", ".join(sorted(totals["languages"])) or "none",
        realtime_factor=round(totals["media_s"] / totals["seconds"], 2) if totals["seconds"] else 0,
        no_audio=len(probed) - len(with_audio),
    )
    yield from per_file_results(context, outcome, metadata, transcripts_version(settings))
