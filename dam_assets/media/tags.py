"""Zero-shot scene tags: which words of a vocabulary a frame's CLIP vector is closest to."""

from __future__ import annotations

import numpy as np

# Common words people search footage by. Override with the clip resource's `tag_vocabulary`.
DEFAULT_VOCABULARY = (
    "beach",
    "ocean",
    "lake",
    "river",
    "waterfall",
    "underwater",
    "forest",
    "mountains",
    "desert",
    "snow",
    "field",
    "garden",
    "park",
    "city street",
    "traffic",
    "highway",
    "building exterior",
    "skyline",
    "bridge",
    "aerial view",
    "night",
    "sunset",
    "sunrise",
    "sky and clouds",
    "rain",
    "fire",
    "office",
    "kitchen",
    "living room",
    "bedroom",
    "restaurant",
    "bar",
    "classroom",
    "studio",
    "stage",
    "concert",
    "crowd",
    "sports",
    "stadium",
    "car interior",
    "car",
    "train",
    "airplane",
    "boat",
    "bicycle",
    "person talking",
    "interview",
    "group of people",
    "children",
    "wedding",
    "party",
    "food",
    "dog",
    "cat",
    "horse",
    "bird",
    "computer screen",
    "text on screen",
    "document",
    "black frame",
    "color bars",
)
PROMPT = "a photo of {}"


def zero_shot(
    image_vectors: np.ndarray,
    label_vectors: np.ndarray,
    labels: list[str] | tuple[str, ...],
    logit_scale: float = 100.0,
    top_k: int = 3,
) -> list[list[tuple[str, float]]]:
    """For each image, the top labels with their softmax probability over the vocabulary."""
    if len(image_vectors) == 0:
        return []
    logits = logit_scale * image_vectors @ label_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1)[:, :top_k]
    return [[(labels[j], round(float(probs[i, j]), 4)) for j in row] for i, row in enumerate(order)]
