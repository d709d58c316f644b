"""Writing derived files atomically: a killed run never leaves half a JPEG or caption."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from PIL import Image


def _replace_via_tmp(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def save_jpeg(image: Image.Image, path: Path, quality: int = 85) -> None:
    _replace_via_tmp(path, lambda tmp: image.convert("RGB").save(tmp, "JPEG", quality=quality))


def write_text(text: str, path: Path) -> None:
    _replace_via_tmp(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
