"""Per-frame measurements taken from the frames scene detection already decodes, so the
timeline, scene quality and perceptual hashes cost no decode pass of their own.

`FrameStats` is a passive PySceneDetect detector: SceneManager hands it every frame, already
downscaled to about 256 px wide, and it never reports a cut. Each frame is made grey once;
from it come brightness, exposure shares, sharpness and noise, and from a 64 px copy the
motion (mean absolute difference) and a dHash per second, of the whole picture and of its
middle (`CENTRE_CROP` off each side: what a cropped copy shows); the global shift between frames
comes from the grey picture's row and column means. `per_second()` and `scene_quality()`
aggregate the arrays afterwards.

Measured on the analysis picture (about 256 px wide, not the full frame): sharpness and noise
are comparable between files of any resolution, not absolute camera figures.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import FrameTimecode, SceneDetector

from .quality import BRIGHT, DARK, laplacian_variance

# What `dam search --sharp / --well-exposed / --steady` ask of a scene (tuned on generated
# shots: sharp texture ~600, shaky ~280, blown-out ~36, out of focus ~7).
SHARP_MIN = 100.0  # sharpness: variance of the Laplacian on the ~256 px analysis picture
UNDER_MAX = 0.10  # at most 10% of pixels crushed to black ...
OVER_MAX = 0.05  # ... and 5% blown to white (highlights do not come back)
SHAKE_MAX = 0.01  # frame-to-frame jitter of the global shift, in frame widths
SMALL_WIDTH = 64  # motion, global shift and hashes work on this copy
CENTRE_CROP = 0.1  # the middle hash leaves this share off each side (matches 8-12 % crops)
QUALITY_EVERY = 4  # exposure, sharpness and noise on every 4th frame: a scene has plenty
# Immerkær's noise operator: a difference of two Laplacians, blind to smooth gradients.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_DARK_LEVEL, _BRIGHT_LEVEL = int(DARK * 255), math.ceil(BRIGHT * 255)  # 8-bit: <= 5, >= 250


def dhash_bits(tiny: np.ndarray) -> int:
    """64-bit difference hash of a 9×8 grey picture: bit set where a pixel is brighter than
    its right neighbour (row-major, first pixel in the top bit)."""
    bits = (tiny[:, 1:] > tiny[:, :-1]).reshape(-1)
    value = int(np.packbits(bits).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value  # as Parquet's signed int64


def noise_sigma(grey: np.ndarray) -> float:
    """Immerkær (1996) fast noise estimate, in 8-bit grey levels."""
    h, w = grey.shape
    if h < 3 or w < 3:
        return 0.0
    response = cv2.filter2D(grey.astype(np.float32), -1, _NOISE_KERNEL)[1:-1, 1:-1]
    return float(np.abs(response).sum() * math.sqrt(math.pi / 2) / (6 * (w - 2) * (h - 2)))


def _profiles(grey: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean luma, and the column and row means less it (a brightness change is no shift)."""
    cols = cv2.reduce(grey, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F)
    rows = cv2.reduce(grey, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).reshape(1, -1)
    mean = float(cols.mean())
    return mean, cols - mean, rows - mean


def profile_shift(prev: np.ndarray, cur: np.ndarray, reach: int) -> float:
    """How far `cur` moved from `prev` (pixels, sub-pixel), by matching their integral
    projections (1×N float32) within ±reach: the cheap global-motion estimate of video
    stabilisers."""
    size = cur.shape[1]
    reach = min(reach, (size - 1) // 4)
    if reach < 1:
        return 0.0
    error = cv2.matchTemplate(prev, cur[:, reach : size - reach], cv2.TM_SQDIFF).reshape(-1)
    k = int(np.argmin(error))
    offset = 0.0
    if 0 < k < len(error) - 1:
        a, b, c = float(error[k - 1]), float(error[k]), float(error[k + 1])
        curve = a - 2 * b + c
        offset = 0.5 * (a - c) / curve if curve > 0 else 0.0
    return reach - (k + offset)


class FrameStats(SceneDetector):
    """Never reports a cut; measures every frame it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.frame = array("q")
        self.brightness, self.motion = array("f"), array("f")
        self.under, self.over = array("f"), array("f")
        self.sharpness, self.noise = array("f"), array("f")
        self.shift_x, self.shift_y = array("f"), array("f")
        self._hash_second = -1
        self._hash_sum: np.ndarray | None = None  # the whole picture, then its middle
        self._hash_count = 0
        self._means: dict[int, np.ndarray] = {}  # second -> its mean 2×8×9 pictures
        self.hashes: dict[int, int] = {}  # second -> dHash (see post_process)
        self.centre_hashes: dict[int, int] = {}  # second -> dHash of the picture's middle
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._columns: dict[str, np.ndarray] | None = None

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list:
        grey = cv2.cvtColor(frame_img, cv2.COLOR_BGR2GRAY)
        h, w = grey.shape
        small_size = (SMALL_WIDTH, max(8, round(h * SMALL_WIDTH / w)))
        small = cv2.resize(grey, small_size, interpolation=cv2.INTER_AREA).astype(np.float32)
        mean, cols, rows = _profiles(grey)
        self.frame.append(timecode.frame_num)
        self.brightness.append(mean / 255.0)
        if timecode.frame_num % QUALITY_EVERY == 0:
            histogram = cv2.calcHist([grey], [0], None, [256], [0, 256]).reshape(-1)
            self.under.append(float(histogram[: _DARK_LEVEL + 1].sum()) / grey.size)
            self.over.append(float(histogram[_BRIGHT_LEVEL:].sum()) / grey.size)
            self.sharpness.append(laplacian_variance(grey))
            self.noise.append(noise_sigma(grey))
        else:
            for column in (self.under, self.over, self.sharpness, self.noise):
                column.append(math.nan)
        prev = self._prev
        if prev is None or prev[0].shape != small.shape:
            for column in (self.motion, self.shift_x, self.shift_y):
                column.append(math.nan)
        else:
            self.motion.append(cv2.norm(small, prev[0], cv2.NORM_L1) / (small.size * 255.0))
            reach = max(2, w // 16)
            self.shift_x.append(profile_shift(prev[1], cols, reach) / w)  # in frame widths
            self.shift_y.append(profile_shift(prev[2], rows, reach) / w)
        self._prev = (small, cols, rows)
        self._hash(timecode, small)
        return []

    def _hash(self, timecode: FrameTimecode, small: np.ndarray) -> None:
        second = int(timecode.frame_num / float(timecode.frame_rate))
        if second != self._hash_second:
            self._flush_hash()
            self._hash_second, self._hash_sum = second, np.zeros((2, 8, 9), np.float32)
            self._hash_count = 0
        h, w = small.shape
        dy, dx = round(h * CENTRE_CROP), round(w * CENTRE_CROP)
        self._hash_sum[0] += cv2.resize(small, (9, 8), interpolation=cv2.INTER_AREA)
        middle = small[dy : h - dy, dx : w - dx]
        self._hash_sum[1] += cv2.resize(middle, (9, 8), interpolation=cv2.INTER_AREA)
        self._hash_count += 1

    def _flush_hash(self) -> None:
        if self._hash_sum is not None and self._hash_count:
            self._means[self._hash_second] = self._hash_sum / self._hash_count

    def post_process(self, timecode: FrameTimecode) -> list:
        self._flush_hash()
        self._hash_sum = None
        # Each second's hash is of its mean picture blended with its neighbours' (¼, ½, ¼): a
        # copy trimmed at a fraction of a second then hashes nearly alike.
        for second, mean in self._means.items():
            before = self._means.get(second - 1, mean)
            after = self._means.get(second + 1, mean)
            blended = 0.5 * mean + 0.25 * (before + after)
            self.hashes[second] = dhash_bits(blended[0])
            self.centre_hashes[second] = dhash_bits(blended[1])
        return []

    def columns(self) -> dict[str, np.ndarray]:
        """The measures as arrays, one entry per frame in frame order (made once per length)."""
        if self._columns is not None and len(self._columns["frame"]) == len(self.frame):
            return self._columns
        names = ("frame", "brightness", "motion", "under", "over", "sharpness", "noise")
        out = {n: np.array(getattr(self, n), dtype=getattr(self, n).typecode) for n in names}
        out["dx"] = np.array(self.shift_x, np.float32)
        out["dy"] = np.array(self.shift_y, np.float32)
        out["shift"] = np.hypot(out["dx"], out["dy"])
        self._columns = out
        return out

    def span(self, start_frame: int, end_frame: int) -> slice:
        """The entries of frames in [start_frame, end_frame)."""
        frames = self.columns()["frame"]
        lo, hi = np.searchsorted(frames, [start_frame, end_frame])
        return slice(int(lo), int(hi))


@dataclass(frozen=True)
class SecondStats:
    second: int
    frames: int
    brightness: float  # mean luma, 0 black .. 1 white
    motion: float | None  # mean absolute difference to the previous frame, 0 .. 1
    dhash: int | None  # dHash of the second's mean picture, ¼ of each neighbour's blended in
    dhash_centre: int | None = None  # the same of the picture's middle (CENTRE_CROP)


def per_second(stats: FrameStats, fps: float) -> list[SecondStats]:
    cols = stats.columns()
    if not len(cols["frame"]) or not fps:
        return []
    out = []
    for second in np.unique((cols["frame"] / fps).astype(np.int64)):
        inside = stats.span(math.ceil(second * fps), math.ceil((second + 1) * fps))
        motion = cols["motion"][inside]
        motion = motion[~np.isnan(motion)]
        out.append(
            SecondStats(
                int(second),
                int(inside.stop - inside.start),
                round(float(cols["brightness"][inside].mean()), 5),
                round(float(motion.mean()), 5) if len(motion) else None,
                stats.hashes.get(int(second)),
                stats.centre_hashes.get(int(second)),
            )
        )
    return out


@dataclass(frozen=True)
class SceneQuality:
    under_share: float  # share of pixels at or below DARK (crushed shadows)
    over_share: float  # share of pixels at or above BRIGHT (blown highlights)
    brightness: float
    sharpness: float | None  # median variance of the Laplacian (8-bit grey, analysis size)
    noise: float | None  # median Immerkær sigma, grey levels
    motion: float | None  # mean absolute frame difference
    camera_motion: float | None  # mean global shift between frames, frame widths per frame
    shake: float | None  # mean change of that shift frame to frame: jitter, not a smooth pan


def scene_quality(stats: FrameStats, start_frame: int, end_frame: int) -> SceneQuality | None:
    """Aggregates over frames in [start_frame, end_frame); the first frame's differences
    (across the cut) are left out."""
    cols = stats.columns()
    inside = stats.span(start_frame, end_frame)
    if inside.stop <= inside.start:
        return None
    after_first = stats.span(start_frame + 1, end_frame)

    def agg(name: str, part: slice, fn=np.mean) -> float | None:
        values = cols[name][part]
        values = values[~np.isnan(values)]
        return round(float(fn(values)), 6) if len(values) else None

    dx, dy = cols["dx"][after_first], cols["dy"][after_first]
    shake = None
    if len(dx) >= 2:
        shake = round(float(np.hypot(np.diff(dx), np.diff(dy)).mean()), 6)
    return SceneQuality(
        under_share=agg("under", inside),
        over_share=agg("over", inside),
        brightness=agg("brightness", inside),
        sharpness=agg("sharpness", inside, np.median),
        noise=agg("noise", inside, np.median),
        motion=agg("motion", after_first),
        camera_motion=agg("shift", after_first),
        shake=shake,
    )
