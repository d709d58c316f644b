"""CLIP image and text embeddings with open_clip (PyTorch), loaded lazily, L2-normalized.

The architecture is an open_clip model name (`ViT-B-32`) or a model-config JSON file (a custom
architecture); the weights are a pretrained tag (`laion2b_s34b_b79k`, `openai`) or a local
checkpoint file. Weights for a tag are looked for under `<models>/open_clip/` first, then
fetched through open_clip's own download into the same folder when the network allows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..media.hub import hub_reachable
from ..settings import CLIP_MODEL, CLIP_PRETRAINED
from .base import Model, ModelUnavailable

EVERY_SECONDS = 5.0  # a frame embedded every this many seconds, besides each scene's keyframe
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass(frozen=True)
class ClipSettings:
    model: str = CLIP_MODEL
    pretrained: str = CLIP_PRETRAINED
    device: str = "cpu"
    batch_size: int = 32
    threads: int = 0  # 0: all cores


def _file_digest(path: Path) -> str:
    """Identity of a local checkpoint: its name plus a hash of its head and size (fast, and it
    changes when the file does)."""
    h = hashlib.blake2s(digest_size=6)
    with open(path, "rb") as handle:
        h.update(handle.read(1 << 20))
    h.update(str(path.stat().st_size).encode())
    return f"{path.stem}@{h.hexdigest()}"


def model_name(settings: ClipSettings) -> str:
    """The open_clip architecture name (a config file's stem for custom architectures)."""
    model = settings.model
    return Path(model).stem if model.endswith(".json") else model


def model_id(settings: ClipSettings) -> str:
    """Stored with every vector and part of the asset's code version: vectors of two models
    never meet in one search."""
    weights = Path(settings.pretrained).expanduser()
    tag = _file_digest(weights) if weights.is_file() else settings.pretrained
    arch = settings.model
    if arch.endswith(".json") and Path(arch).is_file():
        config_hash = hashlib.blake2s(Path(arch).read_bytes(), digest_size=4).hexdigest()
        arch = f"{model_name(settings)}@{config_hash}"
    return f"{arch}/{tag}"


def local_weights(settings: ClipSettings, models_dir: Path) -> Path | None:
    """A checkpoint file given directly, or one placed under `<models>/open_clip/`."""
    given = Path(settings.pretrained).expanduser()
    if given.suffix in WEIGHT_SUFFIXES or os.sep in settings.pretrained:
        if given.is_file():
            return given
        raise ModelUnavailable(
            f"DAM_CLIP_PRETRAINED is {settings.pretrained!r}, but there is no checkpoint file"
            " there. Point it at an open_clip checkpoint (.safetensors/.bin/.pt) or use a"
            " pretrained tag such as 'laion2b_s34b_b79k'."
        )
    folder = models_dir / "open_clip"
    for suffix in WEIGHT_SUFFIXES:
        candidate = folder / f"{model_name(settings)}-{settings.pretrained}{suffix}"
        if candidate.is_file():
            return candidate
    return None


# Where the default weights come from, as open_clip's pretrained table says: a machine without
# them is told so without importing open_clip and torch (5 s) for the message, at every run.
_DEFAULT_HUB = {(CLIP_MODEL, CLIP_PRETRAINED): "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/"}


def _missing_weights(settings: ClipSettings, models_dir: Path, exc: Exception) -> ModelUnavailable:
    target = models_dir / "open_clip" / f"{model_name(settings)}-{settings.pretrained}.safetensors"
    cfg = {"hf_hub": _DEFAULT_HUB.get((settings.model, settings.pretrained))}
    if not cfg["hf_hub"]:
        import open_clip

        cfg = open_clip.get_pretrained_cfg(model_name(settings), settings.pretrained) or {}
    if cfg.get("hf_hub"):
        source = (
            f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')}/resolve/main/"
            "open_clip_model.safetensors"
        )
    elif cfg.get("url"):
        source = cfg["url"]
        target = target.with_suffix(Path(source).suffix or ".pt")
    else:
        import open_clip

        known = open_clip.list_pretrained_tags_by_model(model_name(settings))
        return ModelUnavailable(
            f"open_clip has no pretrained weights {settings.pretrained!r} for"
            f" {model_name(settings)!r}; known tags: {', '.join(known) or 'none'}."
        )
    return ModelUnavailable(
        f"CLIP weights {model_name(settings)}/{settings.pretrained} are not available offline and"
        f" could not be downloaded ({exc}). Download {source} and save it as"
        f" {target} (or anywhere, and set DAM_CLIP_PRETRAINED to that file)."
    )


class ClipModel(Model):
    """open_clip's model, preprocessing and tokenizer, loaded once."""

    settings: ClipSettings

    def _identify(self) -> str:
        return model_id(self.settings)

    def available(self) -> bool:
        """Whether `load()` can find the weights here or fetch them, told without loading
        (the planner of runs asks it for every run it considers)."""
        if self.settings.model.endswith(".json") and not Path(self.settings.model).is_file():
            return False
        try:
            if local_weights(self.settings, self.models_dir) is not None:
                return True
        except ModelUnavailable:
            return False
        return hub_reachable()

    def _load(self):
        weights = local_weights(self.settings, self.models_dir)
        offline = weights is None and not hub_reachable()
        if offline and (self.settings.model, self.settings.pretrained) in _DEFAULT_HUB:
            raise _missing_weights(self.settings, self.models_dir, ConnectionError("offline"))
        import open_clip  # (other models: their architecture is checked first, in open_clip)
        import torch

        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        if self.settings.model.endswith(".json"):
            if not Path(self.settings.model).is_file():
                raise ModelUnavailable(f"CLIP model config {self.settings.model} does not exist.")
            open_clip.add_model_config(self.settings.model)
        name = model_name(self.settings)
        if name not in open_clip.list_models():
            raise ModelUnavailable(
                f"open_clip has no architecture {name!r} (DAM_CLIP_MODEL); e.g. ViT-B-32,"
                " ViT-B-16, ViT-L-14, or a path to a model-config JSON file."
            )
        if offline:
            raise _missing_weights(self.settings, self.models_dir, ConnectionError("offline"))
        cache = self.models_dir / "open_clip"
        cache.mkdir(parents=True, exist_ok=True)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name,
                pretrained=str(weights) if weights else self.settings.pretrained,
                device=self.settings.device,
                cache_dir=str(cache),
            )
        except ModelUnavailable:
            raise
        except Exception as exc:  # hub errors, offline, unknown tag
            if weights is not None:
                raise ModelUnavailable(f"Could not load CLIP checkpoint {weights}: {exc}") from exc
            raise _missing_weights(self.settings, self.models_dir, exc) from exc
        model.eval()
        return model, preprocess, open_clip.get_tokenizer(name)

    @property
    def _model(self):
        return self.loaded[0]

    @property
    def _preprocess(self):
        return self.loaded[1]

    @property
    def _tokenizer(self):
        return self.loaded[2]

    @property
    def dim(self) -> int:
        return (
            int(self._model.text_projection.shape[1])
            if hasattr(self._model, "text_projection") and self._model.text_projection is not None
            else int(self.embed_text(["x"]).shape[1])
        )

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(images), self.settings.batch_size):
            chunk = images[start : start + self.settings.batch_size]
            batch = torch.stack([self._preprocess(im.convert("RGB")) for im in chunk])
            with torch.inference_mode():
                out.append(self._model.encode_image(batch.to(self.settings.device)).float().cpu())
        return _normalize(torch.cat(out).numpy()) if out else np.zeros((0, 0), np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = self._tokenizer(list(texts)).to(self.settings.device)
            return _normalize(self._model.encode_text(tokens).float().cpu().numpy())

    def logit_scale(self) -> float:
        return float(self._model.logit_scale.exp().item())


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
