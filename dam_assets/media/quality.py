"""How good a frame is as a poster: not black, not blurred, well exposed.

score = 0.45·sharpness + 0.30·exposure + 0.25·contrast − 0.5·clipped, each in [0, 1]:
sharpness saturates the variance of the Laplacian (1 − e^(−var/100)), exposure is how close
mean luma sits to mid-grey, contrast is luma spread (σ/0.25, capped), clipped is the share of
crushed or blown pixels. Near-black, near-white or flat frames (fades, slates, lens cap) are
multiplied by 0.1 so any real picture beats them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

DARK, BRIGHT = 0.02, 0.98  # luma below / above these counts as crushed / blown


@dataclass(frozen=True)
class Quality:
    score: float
    sharpness: float
    exposure: float
    contrast: float
    clipped: float
    blank: bool


def luma(image: Image.Image, max_width: int = 256) -> np.ndarray:
    """Grey levels in [0, 1] at a small size (scoring a 4K frame at full size buys nothing)."""
    grey = image.convert("L")  # one channel first: resizing then costs a third
    if grey.width > max_width:
        size = (max_width, max(1, round(grey.height * max_width / grey.width)))
        grey = grey.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(grey, dtype=np.float32) / 255.0


def frame_quality(image: Image.Image) -> Quality:
    return luma_quality(luma(image))


def bgr_luma(frame: np.ndarray, max_width: int = 256) -> np.ndarray:
    """Grey levels in [0, 1] from an OpenCV-style BGR array (what PySceneDetect hands out)."""
    step = max(1, frame.shape[1] // max_width)
    small = frame[::step, ::step].astype(np.float32)
    return (0.114 * small[..., 0] + 0.587 * small[..., 1] + 0.299 * small[..., 2]) / 255.0


def laplacian_variance(g: np.ndarray, scale: float = 1.0) -> float:
    """Variance of the 4-neighbour Laplacian over the interior, in 8-bit grey levels squared
    (`scale` 255 for luma in [0, 1]): low means blurred."""
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    g = g.astype(np.float32, copy=False)
    lap = (4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]) * scale
    return float(lap.var())


def luma_quality(g: np.ndarray) -> Quality:
    mean = float(g.mean())
    std = float(g.std())
    lap_var = laplacian_variance(g, 255.0)
    sharpness = 1.0 - float(np.exp(-lap_var / 100.0))
    exposure = max(0.0, 1.0 - abs(mean - 0.5) / 0.5)
    contrast = min(1.0, std / 0.25)
    clipped = float(((g < DARK) | (g > BRIGHT)).mean())
    blank = mean < 0.08 or mean > 0.95 or std < 0.03
    score = 0.45 * sharpness + 0.30 * exposure + 0.25 * contrast - 0.5 * clipped
    score = max(0.0, score) * (0.1 if blank else 1.0)
    return Quality(round(score, 4), sharpness, exposure, contrast, clipped, blank)
