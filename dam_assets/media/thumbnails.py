"""Poster frames, scrub sprite sheets and still-image thumbnails.

A video's poster is the best-scoring (see quality.py) of up to ten keyframes spread over 5–95 % of
the duration, skipping the slates and fades at the ends, at times the sprite shows too. The
sprite sheet holds keyframes roughly every `duration / 100` seconds (at least one second apart)
on a 10-column grid, with a WebVTT index (`#xywh=`) that web players read directly. Only
keyframes are decoded, each once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from .errors import MediaError, is_access_error
from .frames import Frame, first_frame, keyframes_at
from .output import save_jpeg, write_text
from .quality import frame_quality

POSTER_SIZES = {"small": 320, "large": 1280}  # longest side in pixels; never upscaled
TILE_WIDTH = 160
SPRITE_COLUMNS = 10
MAX_TILES = 100
POSTER_CANDIDATES = 10


@dataclass
class ThumbnailSet:
    rows: list[dict] = field(default_factory=list)
    poster_time: float | None = None
    poster_score: float | None = None


def _fit(image: Image.Image, longest: int) -> Image.Image:
    if max(image.size) <= longest:
        return image
    copy = image.copy()
    copy.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    return copy


def tile_times(duration: float) -> list[float]:
    step = max(1.0, duration / MAX_TILES)
    return [i * step for i in range(max(1, math.ceil(duration / step)))]


def candidate_times(duration: float, count: int = POSTER_CANDIDATES) -> list[float]:
    """Up to `count` of the tile times, spread over 5–95 % of the duration: the sprite then
    reuses every candidate's decode (intra-only ProRes and MJPEG decode a frame per time).
    A clip too short for three such tiles gets `count` times of its own."""
    if duration <= 1.0 or count <= 1:
        return [0.0]
    inside = [t for t in tile_times(duration) if 0.05 * duration <= t <= 0.95 * duration]
    if len(inside) < 3:
        return [duration * (0.05 + 0.9 * i / (count - 1)) for i in range(count)]
    if len(inside) <= count:
        return inside
    return [inside[round(i * (len(inside) - 1) / (count - 1))] for i in range(count)]


def _posters(image: Image.Image, out_dir: Path, time_s: float | None, score: float) -> list[dict]:
    rows = []
    for label, longest in POSTER_SIZES.items():
        sized = _fit(image, longest)
        path = out_dir / f"poster_{label}.jpg"
        save_jpeg(sized, path)
        rows.append(
            {
                "kind": "poster",
                "size_label": label,
                "time_s": time_s,
                "width": sized.width,
                "height": sized.height,
                "path": str(path),
                "score": score,
            }
        )
    return rows


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def sprite_sheet(frames: list[Frame], out_dir: Path, duration: float) -> list[dict]:
    """One JPEG grid of tiles plus `sprite.vtt` mapping time ranges to tile rectangles."""
    if not frames:
        return []
    first = frames[0].image
    tile_h = max(2, round(TILE_WIDTH * first.height / first.width / 2) * 2)
    cols = min(SPRITE_COLUMNS, len(frames))
    rows_n = math.ceil(len(frames) / cols)
    sheet = Image.new("RGB", (cols * TILE_WIDTH, rows_n * tile_h))
    rows: list[dict] = []
    cues = ["WEBVTT", ""]
    sprite_path = out_dir / "sprite.jpg"
    for i, frame in enumerate(frames):
        x, y = (i % cols) * TILE_WIDTH, (i // cols) * tile_h
        sheet.paste(ImageOps.fit(frame.image, (TILE_WIDTH, tile_h)), (x, y))
        end = frames[i + 1].time if i + 1 < len(frames) else max(duration, frame.time)
        cues += [
            f"{_vtt_time(frame.time)} --> {_vtt_time(end)}",
            f"sprite.jpg#xywh={x},{y},{TILE_WIDTH},{tile_h}",
            "",
        ]
        rows.append(
            {
                "kind": "tile",
                "size_label": "tile",
                "time_s": frame.time,
                "width": TILE_WIDTH,
                "height": tile_h,
                "path": str(sprite_path),
                "score": None,
                "tile_x": x,
                "tile_y": y,
            }
        )
    save_jpeg(sheet, sprite_path, quality=80)
    write_text("\n".join(cues), out_dir / "sprite.vtt")
    rows.insert(
        0,
        {
            "kind": "sprite",
            "size_label": f"{cols}x{rows_n}",
            "time_s": None,
            "width": sheet.width,
            "height": sheet.height,
            "path": str(sprite_path),
            "score": None,
        },
    )
    return rows


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Drop our own files from an earlier run (other assets share the folder)."""
    if out_dir.exists():
        for old in [*out_dir.glob("poster_*.jpg"), *out_dir.glob("sprite.*")]:
            if str(old) not in keep:
                old.unlink()


def video_thumbnails(path: str | Path, out_dir: Path, duration: float | None) -> ThumbnailSet:
    duration = duration or 0.0
    candidates = list(keyframes_at(path, candidate_times(duration), max_side=POSTER_SIZES["large"]))
    if not candidates:
        return ThumbnailSet()
    scored = [(frame_quality(f.image).score, f) for f in candidates]
    score, best = max(scored, key=lambda s: (s[0], -abs(s[1].time - duration / 3)))
    result = ThumbnailSet(poster_time=best.time, poster_score=score)
    result.rows = _posters(best.image, out_dir, best.time, score)
    decoded = {f.time: f for f in candidates}  # short clips: the same keyframes, decoded once
    tiles = list(keyframes_at(path, tile_times(duration), TILE_WIDTH * 2, decoded))
    result.rows += sprite_sheet(tiles, out_dir, duration)
    if tiles:
        result.rows.append(
            {
                "kind": "sprite_vtt",
                "size_label": None,
                "time_s": None,
                "width": None,
                "height": None,
                "path": str(out_dir / "sprite.vtt"),
                "score": None,
            }
        )
    _remove_stale(out_dir, {r["path"] for r in result.rows})
    return result


def image_thumbnails(path: str | Path, out_dir: Path) -> ThumbnailSet:
    """Stills: upright (EXIF orientation), resized; Pillow first, PyAV for what Pillow lacks."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (POSTER_SIZES["large"], POSTER_SIZES["large"]))  # fast JPEG decode
            image = ImageOps.exif_transpose(img).convert("RGB")
    except Image.DecompressionBombError as exc:  # never decoded some other way instead
        raise MediaError(
            "ImageTooLarge",
            f"The image is too large to decode safely ({exc}). Pillow refuses images over"
            f" {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels to protect memory; a panorama or"
            " scan this size needs a smaller copy beside it to be indexed.",
        ) from exc
    except Exception as exc:  # formats Pillow lacks; a share error is not one of those
        if is_access_error(exc):
            raise
        frame = first_frame(path, max_side=POSTER_SIZES["large"])
        if frame is None:
            return ThumbnailSet()
        image = frame.image
    score = frame_quality(image).score
    result = ThumbnailSet(rows=_posters(image, out_dir, None, score), poster_score=score)
    _remove_stale(out_dir, {r["path"] for r in result.rows})
    return result
