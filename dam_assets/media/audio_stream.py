"""An audio track decoded as a stream of mono blocks (PyAV decode + resample), so no caller
holds a whole track: an 8-hour recording is 1.8 GB as float32 at 16 kHz.

One decoder for transcription (16 kHz; the samples faster-whisper's own `decode_audio` gives,
bit for bit) and rig sync (8 kHz, with each block's media time; decoding may start at a seek
point, so a few seconds deep in a long file cost a few seconds of decoding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .containers import open_input

BLOCK_S = 10.0  # seconds per block: small next to any window a caller keeps


class NoAudio(Exception):
    """The file has no audio stream (or not the one asked for)."""


@dataclass(frozen=True)
class Block:
    start_s: float  # media time of samples[0], relative to the container's zero
    samples: np.ndarray  # mono float32
    # So far, the largest gap between a frame's timestamp and the time the samples before it
    # imply: above half an input sample, a seek cannot be trusted to land where it says
    # (millisecond timestamps, as in Matroska, or a stream with gaps).
    jitter_s: float = 0.0
    source_rate: int = 0


def decode_blocks(
    path: str | Path,
    rate: int,
    *,
    stream_index: int = 0,
    from_s: float | None = None,
    block_s: float = BLOCK_S,
    whisper_samples: bool = False,
    skip_invalid: bool = False,
    grid_s: float | None = None,
) -> Iterator[Block]:
    """Blocks of about `block_s` of mono audio at `rate`, in order, from the start or from the
    last seek point at or before `from_s` (media time; the first block says where it landed).
    Decoded frames are resampled a block at a time (through a FIFO), not one by one.

    `whisper_samples`: 16-bit resampling scaled by 1/32768, as faster-whisper decodes, so a
    file transcribes exactly as through `faster_whisper.decode_audio`. `skip_invalid` drops
    undecodable packets as faster-whisper does; sync leaves it off, since a dropped frame
    would shift every later sample's time. `grid_s`: drop up to one grid step of input at the
    start so the output samples fall at `grid_s + k / rate`, the times a decode from the start
    gives them: a window decoded after a seek then holds the same samples, not a resampling of
    the track shifted by a fraction of a sample.
    """
    fmt = "s16" if whisper_samples else "flt"
    with open_input(path, metadata_errors="ignore") as container:
        if len(container.streams.audio) <= stream_index:
            raise NoAudio(f"{path}: no audio stream {stream_index}")
        stream = container.streams.audio[stream_index]
        zero = container.start_time / av.time_base if container.start_time else 0.0
        if from_s is not None and from_s > 0 and stream.time_base:
            target = int((from_s + zero) / stream.time_base)
            container.seek(target, stream=stream, backward=True, any_frame=False)
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=rate)
        fifo = av.AudioFifo()  # frames go to the resampler a block at a time: far fewer calls
        emitted = fed = source = group = 0
        start, jitter = 0.0, 0.0
        for frame in _frames(container.decode(stream), skip_invalid):
            time_s = None if frame.time is None else float(frame.time) - zero
            if not fed:
                if grid_s is not None and time_s is not None:
                    frame, time_s = _on_grid(frame, time_s, grid_s, rate)
                    if frame is None:
                        continue
                start, source = time_s or 0.0, frame.sample_rate
                group = max(1, int(block_s * source))
            elif time_s is not None:
                jitter = max(jitter, abs(time_s - start - fed / source))
            fed += frame.samples
            frame.pts = None  # times are kept above; the FIFO would check their continuity
            fifo.write(frame)
            if fifo.samples >= group:
                samples = _join(_resample(resampler, fifo.read()), whisper_samples)
                if len(samples):
                    yield Block(start + emitted / rate, samples, jitter, source)
                    emitted += len(samples)
        last = _resample(resampler, fifo.read()) if fifo.samples else []
        last += _resample(resampler, None)  # the resampler's flush
        if sum(chunk.size for chunk in last):
            yield Block(start + emitted / rate, _join(last, whisper_samples), jitter, source)


def _resample(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> list[np.ndarray]:
    return [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]


def _frames(frames: Iterator[av.AudioFrame], skip_invalid: bool) -> Iterator[av.AudioFrame]:
    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            if not skip_invalid:
                raise


def _on_grid(
    frame: av.AudioFrame, time_s: float, grid_s: float, rate: int
) -> tuple[av.AudioFrame | None, float | None]:
    """`frame` without its samples before the first one on the output grid, and that sample's
    time; (None, None) when the whole frame lies before it."""
    source = frame.sample_rate
    step = source // math.gcd(source, rate)  # input samples between outputs on the grid
    drop = -round((time_s - grid_s) * source) % step
    if drop == 0:
        return frame, time_s
    if drop >= frame.samples:
        return None, None
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    array = array[:, drop:] if frame.format.is_planar else array[:, drop * channels :]
    trimmed = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(array), format=frame.format.name, layout=frame.layout.name
    )
    trimmed.sample_rate = source
    return trimmed, time_s + drop / source


def _join(chunks: list[np.ndarray], whisper_samples: bool) -> np.ndarray:
    if not chunks:
        return np.zeros(0, np.float32)
    samples = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    if whisper_samples:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)
