"""Speech to text with faster-whisper (CTranslate2), plus WebVTT/SRT captions.

The model is resolved from a name or a folder and loaded once by the caller; `transcribe_file()`
then runs it on one file's audio, decoded as a stream and transcribed in windows of at most
`WINDOW_S` cut in pauses, so an 8-hour recording needs no more memory than a 2-minute one.
Nothing here downloads at import or load time except the explicit, cached `download_model`
fallback for named models.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..settings import WHISPER_MODEL
from .audio_stream import NoAudio, decode_blocks
from .loudness import LoudnessMeter

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-3  # below this peak amplitude (-60 dBFS) a track counts as silent
# The most audio one faster-whisper call sees: 7.7 MB of samples, and its VAD and log-Mel
# features (~0.75 MB per second of window) stay near 100 MB; a recording this long or shorter
# is one call, exactly as when it was handed the whole track.
WINDOW_S = 120.0
CUT_SEARCH = 0.25  # a window ends in a pause found in its last quarter ...
MIN_PAUSE_S = 0.1  # ... at least this long (else at its quietest 100 ms)
# Batched decoding gives one segment per speech chunk (up to 30 s); captions are cut from its
# words: after a sentence, at a pause, or before a cue would grow longer than this.
CAPTION_MAX_S = 7.0
CAPTION_PAUSE_S = 0.6


@dataclass(frozen=True)
class WhisperSettings:
    model: str = WHISPER_MODEL  # faster-whisper name, or a local CTranslate2 folder
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: all cores
    beam_size: int = 5
    vad_filter: bool = True  # skip non-speech (music, tones): fewer hallucinations, faster
    language: str | None = None  # None: detect (multilingual models); ".en" models: English
    # Speech chunks decoded together (faster-whisper's BatchedInferencePipeline; needs the VAD);
    # 1: one 30 s window after another. Batched is 1.3x faster on 2 cores, same word error rate.
    batch_size: int = 8

    def fingerprint(self) -> str:
        """What changes the words: not `batch_size`, which changes only how fast they come (a
        library is not re-transcribed, hours of CPU per hundred hours of speech, for speed)."""
        fields = {k: v for k, v in asdict(self).items() if k != "batch_size"}
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.blake2s(blob, digest_size=4).hexdigest()


def stream_audio(path: str | Path) -> Iterator[np.ndarray]:
    """Mono float32 blocks at 16 kHz, the samples faster-whisper's `decode_audio` gives (which
    holds the whole track: about 1.8 GB for 8 hours)."""
    for block in decode_blocks(path, SAMPLE_RATE, whisper_samples=True, skip_invalid=True):
        yield block.samples


def load_audio(path: str | Path) -> np.ndarray:
    """The whole track at once, for short clips (tests, benchmarks); files go through
    `transcribe_file`, which streams."""
    blocks = list(stream_audio(path))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


@dataclass
class Transcript:
    status: str  # "ok" | "silent" | "no_speech" | "no_audio"
    language: str | None = None
    language_probability: float | None = None
    duration_s: float = 0.0
    speech_s: float = 0.0
    seconds: float = 0.0  # wall time
    segments: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)  # where one window ended and the next began

    @property
    def realtime_factor(self) -> float | None:
        return self.duration_s / self.seconds if self.seconds else None


def windows(
    blocks: Iterable[np.ndarray], window_s: float | None = WINDOW_S
) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample, samples) of consecutive windows of at most `window_s` (None: one window,
    the whole recording), each but the last cut in a pause near its end (`find_cut`), so no
    word is split; holds about one window and one block."""
    size = max(SAMPLE_RATE, int(window_s * SAMPLE_RATE)) if window_s else None
    held: list[np.ndarray] = []
    count = offset = 0
    for block in blocks:
        held.append(block)
        count += len(block)
        while size is not None and count > size:
            buffer = np.concatenate(held) if len(held) > 1 else held[0]
            cut = find_cut(buffer[:size])
            yield offset, buffer[:cut]
            held, count, offset = [buffer[cut:]], count - cut, offset + cut
    if count:
        yield offset, np.concatenate(held) if len(held) > 1 else held[0]


def find_cut(window: np.ndarray) -> int:
    """Where to end `window`: the middle of the longest pause Silero VAD finds in its last
    quarter, else (speech or music throughout) its quietest 100 ms there."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    lo = int(len(window) * (1 - CUT_SEARCH))
    tail = window[lo:]
    speech = get_speech_timestamps(tail, VadOptions(min_silence_duration_ms=0, speech_pad_ms=0))
    edges = [0, *(x for s in speech for x in (s["start"], s["end"])), len(tail)]
    gaps = [(b - a, a) for a, b in zip(edges[::2], edges[1::2], strict=True) if b > a]
    if gaps:
        length, start = max(gaps)
        if length >= MIN_PAUSE_S * SAMPLE_RATE:
            return lo + start + length // 2
    hop = SAMPLE_RATE // 100
    frames = len(tail) // hop
    energy = (tail[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2).mean(axis=1)
    smooth = np.convolve(energy, np.ones(10) / 10, mode="valid")
    return lo + (int(np.argmin(smooth)) + 5) * hop


def transcribe(
    model,
    audio: np.ndarray | Iterable[np.ndarray],
    settings: WhisperSettings,
    window_s: float | None = WINDOW_S,
) -> Transcript:
    """Transcribe samples (one array, or blocks as `stream_audio` yields them) window by window,
    times on the whole recording's clock. A recording up to `window_s` long is one window: one
    faster-whisper call, as if it were handed the whole track."""
    started = time.perf_counter()
    blocks = [audio] if isinstance(audio, np.ndarray) else audio
    language = settings.language
    if language is None and getattr(model.model, "is_multilingual", True) is False:
        language = "en"
    result = Transcript("ok")
    batched = settings.batch_size > 1 and settings.vad_filter
    if batched:
        from faster_whisper import BatchedInferencePipeline

        pipeline = BatchedInferencePipeline(model=model)
    first_info = None
    peak, total, index = 0.0, 0, 0
    for offset, samples in windows(blocks, window_s):
        total += len(samples)
        if offset:
            result.cuts.append(offset / SAMPLE_RATE)
        window_peak = float(np.abs(samples).max()) if len(samples) else 0.0
        peak = max(peak, window_peak)
        if window_peak < SILENCE_PEAK:
            continue  # digital silence: nothing to hear, and nothing for Whisper to invent
        if batched:
            segments_iter, info = pipeline.transcribe(
                samples,
                language=language,
                beam_size=settings.beam_size,
                word_timestamps=True,
                batch_size=settings.batch_size,
            )
        else:
            segments_iter, info = model.transcribe(
                samples,
                language=language,
                beam_size=settings.beam_size,
                vad_filter=settings.vad_filter,
                word_timestamps=True,
                condition_on_previous_text=False,  # a misheard line does not poison the next
            )
        if first_info is None:
            first_info = info
        t0, t1 = offset / SAMPLE_RATE, (offset + len(samples)) / SAMPLE_RATE
        before = len(result.segments)
        for seg in segments_iter:
            for piece in captions_of(seg) if batched else [seg]:
                index += 1
                text = piece.text.strip()
                if text:
                    _add_segment(result, index - 1, piece, text, info.language, t0, t1)
        if language is None and len(result.segments) > before:
            # the first window with speech names the language; later windows are told it
            language = info.language
            result.language, result.language_probability = language, info.language_probability
    result.duration_s = total / SAMPLE_RATE
    if first_info is not None and result.language is None:
        result.language = first_info.language
        result.language_probability = first_info.language_probability
    if result.language_probability is not None:
        result.language_probability = float(result.language_probability)
    if peak < SILENCE_PEAK:
        result = Transcript("silent", duration_s=result.duration_s, cuts=result.cuts)
    elif not result.segments:
        result.status = "no_speech"
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class _Piece:
    """A caption-sized part of a faster-whisper segment; its scores are the segment's."""

    start: float
    end: float
    text: str
    words: list
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def captions_of(seg) -> list:
    """A batched segment (one speech chunk, up to 30 s) cut into caption-sized pieces at its
    words: after a sentence's end, at a pause, or before `CAPTION_MAX_S`."""
    words = list(seg.words or [])
    if not words:
        return [seg]
    pieces, held = [], []
    for word, after in zip(words, [*words[1:], None], strict=True):
        if held and word.end - held[0].start > CAPTION_MAX_S:
            pieces.append(held)
            held = []
        held.append(word)
        sentence = word.word.rstrip().endswith((".", "?", "!", "。", "？", "！"))
        pause = after is not None and after.start - word.end >= CAPTION_PAUSE_S
        if sentence or pause:
            pieces.append(held)
            held = []
    if held:
        pieces.append(held)
    return [
        _Piece(
            float(p[0].start),
            float(p[-1].end),
            "".join(w.word for w in p),
            p,
            seg.avg_logprob,
            seg.no_speech_prob,
            seg.compression_ratio,
        )
        for p in pieces
    ]


def _add_segment(
    result: Transcript, index: int, seg, text: str, language: str, t0: float, t1: float
) -> None:
    def at(t: float) -> float:  # on the recording's clock, never outside its own window
        return round(min(t0 + float(t), t1), 3)

    result.segments.append(
        {
            "segment_index": index,
            "start_s": at(seg.start),
            "end_s": at(seg.end),
            "text": text,
            "avg_logprob": float(seg.avg_logprob),
            "no_speech_prob": float(seg.no_speech_prob),
            "compression_ratio": float(seg.compression_ratio),
            "language": language,
        }
    )
    result.speech_s += float(seg.end - seg.start)
    for w_index, word in enumerate(seg.words or []):
        result.words.append(
            {
                "segment_index": index,
                "word_index": w_index,
                "word": word.word.strip(),
                "start_s": at(word.start),
                "end_s": at(word.end),
                "probability": float(word.probability),
            }
        )


def transcribe_file(
    model,
    path: str | Path,
    settings: WhisperSettings,
    window_s: float | None = WINDOW_S,
    meter: LoudnessMeter | None = None,
) -> Transcript:
    """`transcribe` on a file, decoded as it goes: memory stays one window, whatever the length.
    `meter` measures loudness on the same samples as they pass (no second decode)."""
    started = time.perf_counter()
    blocks = stream_audio(path)
    if meter is not None:
        blocks = meter.watch(blocks)
    try:
        result = transcribe(model, blocks, settings, window_s)
    except NoAudio:
        result = Transcript("no_audio")
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
