"""Multi-camera sync by audio cross-correlation: coarse on an onset envelope, fine on samples.

Convention: `offset_s` is where the other recording's time 0 falls on the reference's
timeline (reference_time = other_time + offset_s).

1. Both tracks are decoded to mono at one rate (different camera rates are resampled), their
   media-time origin taken from the first decoded audio frame, so AAC priming and edit lists
   (which FFmpeg applies) are accounted for.
2. Coarse: the full cross-correlation (FFT) of 10 ms onset-strength envelopes, over the whole
   recordings, not a first-seconds window. Confidence = 1 − second peak / best peak (the second
   peak taken at least 0.5 s away), so an unrelated recording scores near 0.
3. Fine: in several windows across the overlap, the sample cross-correlation within ±100 ms of
   the coarse lag, then of the previous window's (drift moves the lag along a long take), GCC-PHAT
   weighted, with parabolic interpolation (sub-sample). A robust line through the window
   offsets gives the offset at the other recording's start and the clock drift in ppm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

RATE = 8000  # Hz: 0.125 ms per sample, far below a frame; cheap for hour-long takes
HOP_S = 0.01
FINE_WINDOW_S = 8.0
FINE_SEARCH_S = 0.1  # around the coarse (then the previous window's) lag: 100 ppm × 1000 s


@dataclass
class Audio:
    samples: np.ndarray  # mono float32 at RATE
    start_s: float  # media time of the first sample (relative to the container's zero)

    @property
    def duration(self) -> float:
        return len(self.samples) / RATE


def load_audio(path: str | Path, stream_index: int = 0) -> Audio | None:
    """Mono at RATE, or None when the file has no audio."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[stream_index]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks: list[np.ndarray] = []
        start = None
        for frame in container.decode(stream):
            if start is None and frame.time is not None:
                start = float(frame.time)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        container_start = container.start_time / av.time_base if container.start_time else 0.0
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return Audio(samples, (start or 0.0) - container_start)


def onset_envelope(samples: np.ndarray, hop: int = int(RATE * HOP_S)) -> np.ndarray:
    """Positive change of log energy per hop: claps, consonants and hits stand out; level and
    microphone colour do not."""
    frames = len(samples) // hop
    if frames < 2:
        return np.zeros(max(frames, 1), np.float32)
    energy = (samples[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    log_energy = np.log10(energy + 1e-10)
    onset = np.maximum(np.diff(log_energy, prepend=log_energy[0]), 0.0)
    onset -= onset.mean()
    norm = np.linalg.norm(onset)
    return (onset / norm if norm else onset).astype(np.float32)


def cross_correlation(
    ref: np.ndarray, other: np.ndarray, phat: bool = False
) -> tuple[np.ndarray, int]:
    """Full cross-correlation by FFT; returns (values, lag of index 0), lag = ref − other.
    `phat` whitens the cross-spectrum (GCC-PHAT): every frequency counts equally, so tones and
    room resonance stop producing broad, ambiguous peaks and the true delay is a spike."""
    n = len(ref) + len(other) - 1
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(ref, size) * np.conj(np.fft.rfft(other, size))
    if phat:
        spec /= np.abs(spec) + 1e-12
    corr = np.fft.irfft(spec, size)
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


def coarse_offset(ref: Audio, other: Audio) -> tuple[float, float]:
    """(offset_s, confidence in [0, 1]) from the onset envelopes of the whole recordings."""
    env_ref, env_other = onset_envelope(ref.samples), onset_envelope(other.samples)
    values, lag0 = cross_correlation(env_ref, env_other)
    best = int(np.argmax(values))
    peak = float(values[best])
    guard = int(0.5 / HOP_S)
    masked = values.copy()
    masked[max(0, best - guard) : best + guard + 1] = -np.inf
    second = float(masked.max()) if np.isfinite(masked).any() else 0.0
    confidence = 0.0 if peak <= 0 else max(0.0, 1.0 - max(second, 0.0) / peak)
    lag_s = (_parabolic(values, best) + lag0) * HOP_S
    return lag_s + ref.start_s - other.start_s, confidence


def _fine_window(ref: np.ndarray, other: np.ndarray, lag: float, t_other: float) -> float | None:
    """Sub-sample lag (ref index − other index, in samples) near `lag` for a window starting at
    `t_other` seconds into `other`."""
    w = int(FINE_WINDOW_S * RATE)
    r = int(FINE_SEARCH_S * RATE)
    o0 = int(t_other * RATE)
    r0 = o0 + round(lag) - r
    if o0 < 0 or o0 + w > len(other) or r0 < 0 or r0 + w + 2 * r > len(ref):
        return None
    seg_other = other[o0 : o0 + w]
    seg_ref = ref[r0 : r0 + w + 2 * r]
    if float(np.abs(seg_other).max()) < 1e-4:
        return None  # silence tells nothing
    values, lag0 = cross_correlation(seg_ref, seg_other, phat=True)
    lo = -lag0  # index of lag 0 (segment-relative)
    window = values[lo : lo + 2 * r + 1]
    i = int(np.argmax(window))
    return r0 - o0 + _parabolic(window, i)


def _robust_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Line fit that drops windows whose offset is off the line by more than 1 ms (a window of
    near-silence or one repeated sound can lock onto a wrong peak)."""
    keep = np.ones(len(x), bool)
    for _ in range(3):
        slope, intercept = np.polyfit(x[keep], y[keep], 1)
        residual = np.abs(y - (slope * x + intercept))
        new_keep = residual <= max(1e-3, 3 * np.median(residual[keep]))
        if new_keep.sum() < 3 or (new_keep == keep).all():
            break
        keep = new_keep
    return float(slope), float(intercept)


@dataclass
class SyncResult:
    offset_s: float
    confidence: float
    drift_ppm: float | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)  # (other time, offset)


def measure(ref: Audio, other: Audio) -> SyncResult:
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
    for k in range(count):
        t = start + FINE_SEARCH_S + (usable * k / max(1, count - 1) if count > 1 else usable / 2)
        lag = _fine_window(ref.samples, other.samples, expected, t)
        if lag is not None:
            expected = lag
            centre = t + FINE_WINDOW_S / 2
            points.append((centre, lag / RATE + ref.start_s - other.start_s))
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
