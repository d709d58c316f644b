"""Multi-camera sync by audio cross-correlation: coarse on an onset envelope, fine on samples.

Convention: `offset_s` is where the other recording's time 0 falls on the reference's
timeline (reference_time = other_time + offset_s).

1. Each track is decoded once, as a stream, to mono at one rate (different camera rates are
   resampled), its media-time origin taken from the first decoded audio frame, so AAC priming
   and edit lists (which FFmpeg applies) are accounted for. What is kept (`Track`) is its 10 ms
   onset envelope (400 bytes per second of audio: 11.5 MB for 8 hours) and, up to `KEEP_S`,
   its samples; a longer track's fine windows are decoded again from a seek point when needed,
   so a session of 8-hour cameras never holds a whole track.
2. Coarse: the full cross-correlation (FFT) of the onset envelopes, over the whole recordings,
   not a first-seconds window. Confidence = 1 − second peak / best peak (the second peak taken
   at least 0.5 s away), so an unrelated recording scores near 0.
3. Fine: in several windows across the overlap, the sample cross-correlation within ±100 ms of
   the window's own coarse lag (on long takes, from the envelope of the minutes around it:
   drift moves the lag seconds over hours), else the previous window's, GCC-PHAT weighted, with
   parabolic interpolation (sub-sample). A robust line through the window
   offsets gives the offset at the other recording's start and the clock drift in ppm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import fft

from .audio_stream import Block, NoAudio, decode_blocks

RATE = 8000  # Hz: 0.125 ms per sample, far below a frame; cheap for hour-long takes
HOP_S = 0.01
FINE_WINDOW_S = 8.0
FINE_SEARCH_S = 0.1  # around the coarse (then the previous window's) lag: 100 ppm × 1000 s
KEEP_S = 300.0  # tracks up to 5 min keep their samples (9.6 MB, less than an 8-hour envelope)
PREROLL_S = 1.0  # decoded and dropped before a re-read window: decoder and resampler settle


@dataclass
class Track:
    """One recording's audio as sync needs it: its onset envelope, its length and where to read
    sample windows from, not its samples (unless it is short)."""

    path: str
    stream_index: int
    start_s: float  # media time of the first sample (relative to the container's zero)
    length: int  # samples at RATE
    envelope: np.ndarray  # onset envelope of the whole track (`_onset`), 10 ms hop
    samples: np.ndarray | None = None  # mono float32 at RATE, kept up to KEEP_S only
    exact_times: bool = True  # frame timestamps agree with sample counts: seeks land true
    _reader: _Forward | None = field(default=None, repr=False, compare=False)

    @property
    def duration(self) -> float:
        return self.length / RATE

    def window(self, first: int, count: int) -> np.ndarray:
        """Up to `count` samples from sample `first` on: the samples a decode from the start
        gives there. Kept samples are sliced; otherwise a seek lands before the window and the
        decode is put on this track's sample grid, or, when the file's timestamps cannot place
        a seek to the sample, one decode from the start serves windows asked for in order."""
        if self.samples is not None:
            return self.samples[first : first + count]
        if not self.exact_times:
            if self._reader is None or self._reader.position > first:
                self.close()
                self._reader = _Forward(decode_blocks(self.path, RATE, **self._stream))
            return self._reader.read(first, count)
        want = self.start_s + first / RATE
        preroll = PREROLL_S
        while True:
            seek = want - preroll
            from_s = seek if seek > self.start_s else None
            blocks = decode_blocks(
                self.path, RATE, from_s=from_s, grid_s=self.start_s, **self._stream
            )
            with contextlib.closing(blocks):
                samples = _after(blocks, want, count, must_start_before=from_s is not None)
            if samples is not None:
                return samples
            preroll *= 4  # the seek point lies past `want` (an imprecise index): go further back

    def close(self) -> None:
        """Let go of the open file a run of in-order windows reads from."""
        if self._reader is not None:
            self._reader.blocks.close()
            self._reader = None

    @property
    def _stream(self) -> dict:
        return {"stream_index": self.stream_index}


def _after(
    blocks: Iterator[Block], want: float, count: int, must_start_before: bool
) -> np.ndarray | None:
    """Up to `count` samples from the one at media time `want` on; None when the blocks begin
    after it and `must_start_before`."""
    taken: list[np.ndarray] = []
    have, skip = 0, None
    for block in blocks:
        if skip is None:
            skip = round((want - block.start_s) * RATE)
            if skip < 0 and must_start_before:
                return None
            skip = max(skip, 0)
        if skip >= len(block.samples):
            skip -= len(block.samples)
            continue
        taken.append(block.samples[skip : skip + count - have])
        skip, have = 0, have + len(taken[-1])
        if have >= count:
            break
    return np.concatenate(taken) if taken else np.zeros(0, np.float32)


class _Forward:
    """Windows read in order from one decode from the start; holds one window and one block."""

    def __init__(self, blocks: Iterator[Block]) -> None:
        self.blocks = blocks
        self.buffer = np.zeros(0, np.float32)
        self.position = 0  # sample index of buffer[0]

    def read(self, first: int, count: int) -> np.ndarray:
        while self.position + len(self.buffer) < first + count:
            block = next(self.blocks, None)
            if block is None:
                break
            drop = min(max(0, first - self.position), len(self.buffer))
            self.buffer = np.concatenate([self.buffer[drop:], block.samples])
            self.position += drop
        lo = max(0, first - self.position)
        return self.buffer[lo : lo + count].copy()


def scan_track(path: str | Path, stream_index: int = 0, keep_s: float = KEEP_S) -> Track | None:
    """Decode a track once, as a stream: its onset envelope, length and start, and its samples
    when it lasts `keep_s` or less. None when the file has no audio."""
    hop = int(RATE * HOP_S)
    log_energy: list[np.ndarray] = []
    carry = np.zeros(0, np.float32)
    kept: list[np.ndarray] | None = []
    length, start, last = 0, None, None
    try:
        for block in decode_blocks(path, RATE, stream_index=stream_index):
            if start is None:
                start = block.start_s
            last = block
            length += len(block.samples)
            if kept is not None:
                kept.append(block.samples)
                if length > keep_s * RATE:
                    kept = None
            data = np.concatenate([carry, block.samples]) if carry.size else block.samples
            frames = len(data) // hop
            log_energy.append(_log_energy(data[: frames * hop], hop))
            carry = data[frames * hop :]
    except NoAudio:
        return None
    energy = np.concatenate(log_energy) if log_energy else np.zeros(0, np.float32)
    samples = None
    if kept is not None:
        samples = np.concatenate(kept) if kept else np.zeros(0, np.float32)
    exact = last is None or last.jitter_s <= 0.5 / max(last.source_rate, 1) + 1e-9
    return Track(str(path), stream_index, start or 0.0, length, _onset(energy), samples, exact)


def _log_energy(samples: np.ndarray, hop: int) -> np.ndarray:
    frames = len(samples) // hop
    energy = (samples[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    return np.log10(energy + 1e-10)


def _onset(log_energy: np.ndarray) -> np.ndarray:
    """The onset envelope: positive change of log energy per hop, so claps, consonants and
    hits stand out and level and microphone colour do not; zero mean, unit norm."""
    if len(log_energy) < 2:
        return np.zeros(max(len(log_energy), 1), np.float32)
    onset = np.maximum(np.diff(log_energy, prepend=log_energy[0]), 0.0)
    onset -= onset.mean()
    norm = np.linalg.norm(onset)
    return (onset / norm if norm else onset).astype(np.float32)


def cross_correlation(
    ref: np.ndarray, other: np.ndarray, phat: bool = False
) -> tuple[np.ndarray, int]:
    """Full cross-correlation by FFT; returns (values, lag of index 0), lag = ref − other.
    `phat` whitens the cross-spectrum (GCC-PHAT): every frequency counts equally, so tones and
    room resonance stop producing broad, ambiguous peaks and the true delay is a spike.
    Spectra are multiplied in place at the smallest fast size: for two 8-hour envelopes this
    needs about 14 bytes per lag, not the 40 of power-of-two sizes and temporaries."""
    n = len(ref) + len(other) - 1
    size = fft.next_fast_len(n, real=True)
    spec = fft.rfft(ref, size)
    theirs = fft.rfft(other, size)
    np.conjugate(theirs, out=theirs)
    spec *= theirs
    del theirs
    if phat:
        spec /= np.abs(spec) + 1e-12
    corr = fft.irfft(spec, size, overwrite_x=True)
    del spec
    # lags -(len(other)-1) .. len(ref)-1
    values = np.concatenate([corr[size - (len(other) - 1) :], corr[: len(ref)]])
    return values, -(len(other) - 1)


def _parabolic(values: np.ndarray, i: int) -> float:
    if 0 < i < len(values) - 1:
        a, b, c = values[i - 1], values[i], values[i + 1]
        denom = a - 2 * b + c
        if denom:
            return i + 0.5 * (a - c) / denom
    return float(i)


def coarse_offset(ref: Track, other: Track) -> tuple[float, float]:
    """(offset_s, confidence in [0, 1]) from the onset envelopes of the whole recordings."""
    values, lag0 = cross_correlation(ref.envelope, other.envelope)
    best = int(np.argmax(values))
    peak = float(values[best])
    guard = int(0.5 / HOP_S)
    away = (values[: max(0, best - guard)], values[best + guard + 1 :])
    second = max((float(part.max()) for part in away if part.size), default=0.0)
    confidence = 0.0 if peak <= 0 else max(0.0, 1.0 - max(second, 0.0) / peak)
    lag_s = (_parabolic(values, best) + lag0) * HOP_S
    return lag_s + ref.start_s - other.start_s, confidence


LOCAL_SPAN_S = 300.0  # envelope around a fine window used to find its own coarse lag
LOCAL_SEARCH_S = 10.0  # how far that lag may be from the whole take's (drift over hours)


def _local_lag(ref: Track, other: Track, lag: float, t_other: float) -> float | None:
    """The lag (samples) near `t_other` seconds into `other`, from the onset envelopes of the
    minutes around it, searched within ±LOCAL_SEARCH_S of the whole take's `lag`. Over an
    8-hour take at 100 ppm the lag moves ~3 s, far past the fine search; the envelope is
    cheap (100 values a second) and places each window on its own."""
    per_hop = RATE * HOP_S
    half, search = int(LOCAL_SPAN_S / HOP_S), int(LOCAL_SEARCH_S / HOP_S)
    centre = int(t_other / HOP_S)
    o_lo, o_hi = max(0, centre - half), min(len(other.envelope), centre + half)
    shift = round(lag / per_hop)
    r_lo = max(0, o_lo + shift - search)
    r_hi = min(len(ref.envelope), o_hi + shift + search)
    if o_hi - o_lo < int(30 / HOP_S) or r_hi - r_lo < int(30 / HOP_S):
        return None
    values, lag0 = cross_correlation(ref.envelope[r_lo:r_hi], other.envelope[o_lo:o_hi])
    # index i holds the lag (ref − other, in hops) r_lo − o_lo + lag0 + i
    first = shift - search - (r_lo - o_lo + lag0)
    lo, hi = max(0, first), min(len(values), first + 2 * search + 1)
    window = values[lo:hi]
    if not window.size or float(window.max()) <= 0:
        return None
    best = lo + _parabolic(window, int(np.argmax(window)))
    return (r_lo - o_lo + lag0 + best) * per_hop


def _fine_window(ref: Track, other: Track, lag: float, t_other: float) -> float | None:
    """Sub-sample lag (ref index − other index, in samples) near `lag` for a window starting at
    `t_other` seconds into `other`."""
    w = int(FINE_WINDOW_S * RATE)
    r = int(FINE_SEARCH_S * RATE)
    o0 = int(t_other * RATE)
    r0 = o0 + round(lag) - r
    if o0 < 0 or o0 + w > other.length or r0 < 0 or r0 + w + 2 * r > ref.length:
        return None
    seg_other = other.window(o0, w)
    if len(seg_other) < w or float(np.abs(seg_other).max()) < 1e-4:
        return None  # silence tells nothing
    seg_ref = ref.window(r0, w + 2 * r)
    if len(seg_ref) < w + 2 * r:
        return None
    values, lag0 = cross_correlation(seg_ref, seg_other, phat=True)
    lo = -lag0  # index of lag 0 (segment-relative)
    window = values[lo : lo + 2 * r + 1]
    i = int(np.argmax(window))
    return r0 - o0 + _parabolic(window, i)


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Line fit that drops windows whose offset is off the line by more than 1 ms (a window of
    near-silence or one repeated sound can lock onto a wrong peak). The first line is
    Theil-Sen's (the median of pairwise slopes), which a few wrong windows do not tilt; a
    least-squares fit over the windows near it follows."""
    from scipy.stats import theilslopes

    slope, intercept, _, _ = theilslopes(y, x)
    keep = np.abs(y - (slope * x + intercept)) <= 1e-3
    if keep.sum() >= 3:
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
    return float(slope), float(intercept)


@dataclass
class SyncResult:
    offset_s: float
    confidence: float
    drift_ppm: float | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)  # (other time, offset)


def measure(ref: Track, other: Track) -> SyncResult:
    """Offset of `other` against `ref` over their whole overlap, with drift."""
    coarse, confidence = coarse_offset(ref, other)
    lag_samples = (coarse - ref.start_s + other.start_s) * RATE
    # the part of `other` that overlaps `ref`, in other's sample time
    start = max(0.0, -(coarse - ref.start_s + other.start_s))
    end = min(other.duration, ref.duration - (coarse - ref.start_s + other.start_s))
    usable = end - start - FINE_WINDOW_S - 2 * FINE_SEARCH_S
    count = int(min(12, max(1, usable // 4))) if usable > 0 else 0
    points: list[tuple[float, float]] = []
    expected = lag_samples  # follows the windows: drift moves the lag along a long take
    try:
        for k in range(count):
            t = start + FINE_SEARCH_S
            t += usable * k / max(1, count - 1) if count > 1 else usable / 2
            near = _local_lag(ref, other, lag_samples, t) if usable > LOCAL_SPAN_S else None
            lag = _fine_window(ref, other, expected if near is None else near, t)
            if lag is not None:
                expected = lag
                centre = t + FINE_WINDOW_S / 2
                points.append((centre, lag / RATE + ref.start_s - other.start_s))
    finally:
        ref.close()
        other.close()
    if not points:
        return SyncResult(coarse, confidence)
    times = np.array([p[0] for p in points])
    offsets = np.array([p[1] for p in points])
    if len(points) >= 3 and np.ptp(times) >= 10:
        slope, intercept = _robust_line(times, offsets)
        # If the other clock runs fast by d, other_time = real·(1 + d) and the offset falls by
        # d per second of the other's time: drift (other fast, in ppm) = −slope·10⁶.
        return SyncResult(float(intercept), confidence, float(-slope * 1e6), points)
    return SyncResult(float(np.median(offsets)), confidence, None, points)
