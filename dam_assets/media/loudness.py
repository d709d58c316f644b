"""Loudness and silence per second, measured on audio blocks another reader already decodes
(transcription's 16 kHz mono stream), so the timeline costs no decode pass of its own."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

SILENCE_DBFS = -50.0  # a second whose RMS is below this is silent (room tone sits above)
FLOOR_DBFS = -120.0  # what digital silence reads as, instead of minus infinity


def dbfs(value: float) -> float:
    return round(max(FLOOR_DBFS, 20.0 * math.log10(value)) if value > 0 else FLOOR_DBFS, 2)


@dataclass(frozen=True)
class SecondLoudness:
    second: int
    rms_dbfs: float
    peak_dbfs: float
    silent: bool


class LoudnessMeter:
    """Watches blocks of mono samples go by (`watch`), summing squares and peaks per second."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._squares: list[float] = []
        self._peaks: list[float] = []
        self._counts: list[int] = []
        self._seen = 0

    def watch(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.add(block)
            yield block

    def add(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        first = self._seen // self.rate
        # where each second begins inside this block
        edges = np.arange((first + 1) * self.rate, self._seen + len(samples), self.rate)
        starts = np.concatenate([[0], edges - self._seen]).astype(np.int64)
        squares = np.add.reduceat(np.square(samples, dtype=np.float64), starts)
        peaks = np.maximum.reduceat(np.abs(samples), starts)
        counts = np.diff(np.append(starts, len(samples)))
        for offset, (sq, peak, count) in enumerate(zip(squares, peaks, counts, strict=True)):
            second = first + offset
            if second == len(self._counts):
                self._squares.append(0.0)
                self._peaks.append(0.0)
                self._counts.append(0)
            self._squares[second] += float(sq)
            self._peaks[second] = max(self._peaks[second], float(peak))
            self._counts[second] += int(count)
        self._seen += len(samples)

    def seconds(self) -> list[SecondLoudness]:
        out = []
        for second, (squares, peak, count) in enumerate(
            zip(self._squares, self._peaks, self._counts, strict=True)
        ):
            rms = dbfs(math.sqrt(squares / count)) if count else FLOOR_DBFS
            out.append(SecondLoudness(second, rms, dbfs(peak), rms < SILENCE_DBFS))
        return out
