"""Versions that say which settings made a partition.

Each asset with settings has one function from the settings it runs with to a version string:
- at definition time, of the settings the deployment is configured with (environment and the
  resources' defaults), as the asset's `code_version`: change a configured setting and every
  partition made under the old one shows stale, and the nightly run re-makes it;
- at run time, of the settings the run actually used (a launchpad override included), as the
  data version of every partition it materializes: a file re-made with other settings makes
  what depends on it stale for that file.
"""

from __future__ import annotations

import hashlib
import json

from ...media.scenes import SceneSettings
from ...media.transcribe import WhisperSettings
from ...models.clip import ClipSettings, model_id
from ...models.faces import FaceModel, FaceSettings
from ...settings import data_dir


def _digest(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.blake2s(blob, digest_size=4).hexdigest()


def scenes_version(settings: SceneSettings) -> str:
    return f"scenes-2-{settings.fingerprint()}"  # 2: scene_quality and timeline_frames


def transcripts_version(settings: WhisperSettings) -> str:
    # Not bumped for timeline_audio: re-transcribing a whole library (hours per hundred hours
    # of speech on a CPU) to add loudness is not worth it; files transcribed before it get
    # their sound rows when they are next transcribed (a model or setting change).
    return f"transcripts-1-{settings.fingerprint()}"


def clip_version(settings: ClipSettings, every_s: float, vocabulary: list[str], top: int) -> str:
    """The model (architecture + weights), the sampling and the tag vocabulary."""
    try:
        ident = model_id(settings)
    except OSError:
        ident = f"{settings.model}/{settings.pretrained}"
    return f"clip-1-{_digest(ident, every_s, vocabulary, top)}"


def faces_version(settings: FaceSettings, tracking: dict) -> str:
    """The pack (name and files), sampling, filters and tracking."""
    try:
        ident = FaceModel(settings, data_dir() / "models").id
    except OSError:
        ident = settings.model
    return f"faces-1-{_digest(ident, repr(settings), tracking)}"
