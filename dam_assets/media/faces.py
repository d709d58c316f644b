"""Faces in one file's frames: detect, filter, crop, align; embeddings come later in batches.

`face_batcher` collects aligned faces across files and runs the recognizer whenever a batch
is full, so a run's files share batches while memory stays bounded by one batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..models.base import Batcher
from ..models.faces import FaceModel, FaceSettings
from .face_tracks import FaceSample
from .frames import Frame
from .output import save_jpeg

CROP_SIDE = 160  # stored face crops (px, longer side)
CROP_MARGIN = 0.3  # context around the box, as a fraction of its size


def sample_times(duration: float | None, per_second: float, extra: Iterable[float] = ()) -> list:
    """Every 1/per_second seconds from the first frame, plus `extra` (scene keyframes)."""
    times = {round(float(t), 3) for t in extra if t is not None}
    if duration and duration > 0 and per_second > 0:
        step = 1.0 / per_second
        times.update(round(i * step, 3) for i in range(int(duration / step) + 1))
    return sorted(times or {0.0})


def sharpness(aligned_bgr: np.ndarray) -> float:
    """Variance of the Laplacian: low for motion-blurred or out-of-focus faces."""
    gray = cv2.cvtColor(aligned_bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@dataclass
class FoundFace:
    sample: FaceSample  # time, bbox (source pixels), vector once embedded
    score: float
    blur: float
    landmarks: list[float]  # 5 × (x, y), source pixels
    crop: Path
    source: str  # sample | scene | image
    face_px: float


def face_batcher(model: FaceModel) -> Batcher:
    """Aligned faces of a run's files, through the recognizer a batch at a time; each face
    gets its vector in place."""

    def give(face: FoundFace, vector: np.ndarray) -> None:
        face.sample.vector = vector

    return Batcher(model.embed, model.settings.batch_size, give)


def find_faces(
    frames: Iterable[Frame],
    model: FaceModel,
    batcher: Batcher,
    crops_dir: Path,
    write_dir: Path | None = None,
    scene_times: set[float] = frozenset(),
    still: bool = False,
) -> tuple[list[FoundFace], int]:
    """Faces passing the size, score and sharpness filters; returns them and the number of
    frames looked at. Crops are written as they are found, to `write_dir` (a staging folder the
    caller moves into place once the tables are written) or else `crops_dir`; rows name them
    under `crops_dir`."""
    settings: FaceSettings = model.settings
    found: list[FoundFace] = []
    looked = 0
    for frame in frames:
        looked += 1
        rgb = np.asarray(frame.image.convert("RGB"))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        source = (
            "image" if still else ("scene" if round(frame.time, 3) in scene_times else "sample")
        )
        for n, det in enumerate(model.detect(bgr)):
            x1, y1, x2, y2 = (float(v) for v in det.bbox)
            face_px = min(x2 - x1, y2 - y1) * frame.scale
            if det.score < settings.det_score or face_px < settings.min_face_px:
                continue
            aligned = model.align(bgr, det)
            blur = sharpness(aligned)
            if settings.blur_threshold and blur < settings.blur_threshold:
                continue
            crop_name = f"face_{round(frame.time * 1000):09d}_{n}.jpg"
            crop_path = crops_dir / crop_name
            save_jpeg(_crop(frame, det.bbox), (write_dir or crops_dir) / crop_name, quality=88)
            face = FoundFace(
                sample=FaceSample(
                    time_s=round(frame.time, 3),
                    bbox=np.array([x1, y1, x2, y2]) * frame.scale,
                    vector=np.zeros(0, np.float32),
                    quality=det.score * min(face_px, 112.0) / 112.0,
                ),
                score=det.score,
                blur=blur,
                landmarks=[float(v) * frame.scale for v in det.kps.reshape(-1)],
                crop=crop_path,
                source=source,
                face_px=face_px,
            )
            found.append(face)
            batcher.add(aligned, face)
    return found, looked


def _crop(frame: Frame, bbox: np.ndarray):
    x1, y1, x2, y2 = (float(v) for v in bbox)
    mx, my = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    w, h = frame.image.size
    box = (max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my))
    crop = frame.image.crop(tuple(round(v) for v in box))
    crop.thumbnail((CROP_SIDE, CROP_SIDE))
    return crop
