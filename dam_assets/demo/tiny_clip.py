"""A tiny CLIP for tests and the offline demo: the real open_clip loading and embedding path runs
with no download; what it finds means nothing."""

from __future__ import annotations

import json
from pathlib import Path


def write_tiny_model(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A small open_clip architecture with random weights (config JSON + checkpoint), so the
    real loading and embedding path runs without downloading anything. Tests and the offline
    demo use it; its search results mean nothing."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    }
    config_path = folder / "dam-tiny-clip.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(str(config_path))
    torch.manual_seed(seed)
    model = open_clip.create_model("dam-tiny-clip")
    weights = folder / "dam-tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return config_path, weights
