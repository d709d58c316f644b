"""insightface detection + recognition, loaded once and used in batches.

A pack is a folder of ONNX files (insightface's `buffalo_l`, `buffalo_s`, … or any detector plus
recognizer whose inputs and outputs match theirs). Detection runs per frame (the packs' SCRFD
graphs take one image); alignment and recognition run over many faces at once.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..settings import FACE_MODEL
from .base import Model, ModelUnavailable

PACK_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/{name}.zip"
# insightface's model zoo: download size, detector / recognizer. Their weights are licensed for
# non-commercial research only.
KNOWN_PACKS = {
    "buffalo_l": ("326 MB", "SCRFD-10GF detector, ResNet50 ArcFace (WebFace600K)"),
    "buffalo_m": ("313 MB", "SCRFD-2.5GF detector, ResNet50 ArcFace (WebFace600K)"),
    "buffalo_s": ("159 MB", "SCRFD-500MF detector, MobileFaceNet ArcFace (WebFace600K)"),
    "buffalo_sc": ("16 MB", "SCRFD-500MF detector, MobileFaceNet ArcFace (no landmarks)"),
    "antelopev2": ("407 MB", "SCRFD-10GF detector, ResNet100 ArcFace (Glint360K)"),
}
LICENCE = (
    "insightface's pretrained packs are for non-commercial research use only"
    " (https://github.com/deepinsight/insightface#license); for commercial use, license them"
    " from insightface or point DAM_FACE_MODEL at a detector and recognizer you may use"
)
DISABLED = {"", "none", "off"}


@dataclass(frozen=True)
class FaceSettings:
    model: str = FACE_MODEL  # pack name (under <models>/insightface/models/) or a folder
    samples_per_second: float = 2.0  # plus every scene's keyframe
    frame_side: int = 1280  # frames are decoded at most this large
    det_size: int = 640  # detector input (square); larger finds smaller faces, slower
    det_score: float = 0.7
    min_face_px: int = 40  # shorter bbox side, in the video's own pixels
    blur_threshold: float = 20.0  # variance of the Laplacian of the aligned crop; 0: keep all
    threads: int = 0  # onnxruntime intra-op threads; 0: all cores
    batch_size: int = 64  # aligned faces per recognizer call

    @property
    def enabled(self) -> bool:
        return self.model.strip().lower() not in DISABLED


def pack_dir(model: str, models_dir: Path) -> Path:
    """Where this pack's ONNX files are: the folder itself, or `<models>/insightface/models/
    <name>` (the layout insightface's own downloader uses under its root)."""
    direct = Path(model).expanduser()
    if direct.is_dir() or os.sep in model:
        return direct
    return models_dir / "insightface" / "models" / model


def missing_pack_message(model: str, folder: Path) -> str:
    size, what = KNOWN_PACKS.get(model, ("unknown size", "an insightface-compatible pack"))
    if model in KNOWN_PACKS:
        fetch = (
            f"download {PACK_URL.format(name=model)} ({size}; {what}) and unzip it so the"
            f" .onnx files are directly in {folder}"
        )
    else:
        fetch = f"put a detector and a recognizer .onnx file in {folder}"
    return (
        f"Face model pack {model!r} is not available offline: {fetch}. Or set DAM_FACE_MODEL"
        f" to a folder of ONNX files (buffalo_s is smaller and about 3x faster), or to 'none'"
        f" to skip faces. Licence: {LICENCE}."
    )


@dataclass
class DetectedFace:
    bbox: np.ndarray  # x1, y1, x2, y2 in the image's pixels
    score: float
    kps: np.ndarray  # 5 × 2 landmarks (eyes, nose, mouth corners)


class FaceModel(Model):
    """insightface's FaceAnalysis over a pack folder (a detector and a recognizer)."""

    settings: FaceSettings

    def __init__(self, settings: FaceSettings, models_dir: Path):
        super().__init__(settings, models_dir)
        self.folder = pack_dir(settings.model, models_dir)

    def _identify(self) -> str:
        """Pack name plus the ONNX files' sizes: another pack (or a swapped recognizer) is
        another model."""
        files = sorted(self.folder.glob("*.onnx"))
        sizes = "+".join(f"{p.stem}:{p.stat().st_size}" for p in files)
        return f"insightface/{self.folder.name}/{sizes}"

    def available(self) -> bool:
        """Whether a pack is in place (told without loading it); faces switched off need
        none."""
        return not self.settings.enabled or any(self.folder.glob("*.onnx"))

    def _load(self):
        if not any(self.folder.glob("*.onnx")):
            raise ModelUnavailable(missing_pack_message(self.settings.model, self.folder))
        import onnxruntime
        from insightface.app import FaceAnalysis

        options = onnxruntime.SessionOptions()
        if self.settings.threads:
            options.intra_op_num_threads = self.settings.threads
        try:
            app = FaceAnalysis(
                name=str(self.folder),
                allowed_modules=["detection", "recognition"],
                providers=["CPUExecutionProvider"],
                sess_options=options,
            )
        except AssertionError as exc:  # insightface asserts a detector exists
            raise ModelUnavailable(
                f"{self.folder} has no face detector insightface recognises: "
                + missing_pack_message(self.settings.model, self.folder)
            ) from exc
        if "recognition" not in app.models:
            raise ModelUnavailable(
                f"{self.folder} has a detector but no recognizer (ArcFace-style, 112 px input)."
            )
        size = self.settings.det_size
        app.prepare(ctx_id=-1, det_thresh=self.settings.det_score, det_size=(size, size))
        return app

    @property
    def _app(self):
        return self.loaded

    @property
    def dim(self) -> int:
        rec = self._app.models["recognition"]
        return int(rec.session.get_outputs()[0].shape[-1])

    def detect(self, bgr: np.ndarray) -> list[DetectedFace]:
        """Faces above the score threshold in one BGR image, best first."""
        bboxes, kpss = self._app.det_model.detect(bgr, max_num=0)
        faces = []
        for i in range(bboxes.shape[0]):
            if kpss is None:
                continue  # a detector without landmarks cannot align faces for recognition
            faces.append(DetectedFace(bboxes[i, :4].copy(), float(bboxes[i, 4]), kpss[i].copy()))
        return faces

    def align(self, bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The 112×112 (or the recognizer's size) crop warped to the ArcFace landmark template."""
        from insightface.utils import face_align

        size = self._app.models["recognition"].input_size[0]
        with warnings.catch_warnings():  # insightface calls a deprecated scikit-image API
            warnings.simplefilter("ignore", FutureWarning)
            return face_align.norm_crop(bgr, landmark=face.kps, image_size=size)

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings of aligned crops, in batches."""
        rec = self._app.models["recognition"]
        out = []
        step = max(1, self.settings.batch_size)
        for i in range(0, len(aligned), step):
            out.append(np.asarray(rec.get_feat(aligned[i : i + step]), dtype=np.float32))
        if not out:
            return np.zeros((0, self.dim), np.float32)
        vectors = np.concatenate(out)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
