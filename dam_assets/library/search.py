"""Search the library from Python (notebooks) and from `dam search`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .. import settings
from ..media.frame_stats import OVER_MAX, SHAKE_MAX, SHARP_MIN, UNDER_MAX
from ..models.clip import EVERY_SECONDS
from ..storage import Store


@dataclass
class Filters:
    """Catalog conditions a moment's file must meet (None: no condition)."""

    min_duration: float | None = None
    max_duration: float | None = None
    min_height: int | None = None  # display height in pixels, e.g. 1080
    camera: str | None = None  # matched against make and model, case-insensitive
    since: str | None = None  # ISO date, on the capture time (creation_time)
    until: str | None = None
    has_speech: bool | None = None
    # Scene conditions (scene_quality; thresholds in media/frame_stats.py): a moment must lie
    # in a scene that is sharp / well exposed / steady, so stills never match them.
    sharp: bool = False
    well_exposed: bool = False
    steady: bool = False

    def scene_sql(self) -> str:
        """The condition on scene_quality `q`, or ''."""
        clauses = []
        if self.sharp:
            clauses.append(f"q.sharpness >= {SHARP_MIN}")
        if self.well_exposed:
            clauses.append(f"q.under_share <= {UNDER_MAX} AND q.over_share <= {OVER_MAX}")
        if self.steady:
            clauses.append(f"coalesce(q.shake, 0) <= {SHAKE_MAX}")
        return " AND ".join(clauses)

    def sql(self) -> tuple[str, list]:
        clauses: list[str] = []
        params: list = []
        if self.min_duration is not None:
            clauses.append("p.duration_s >= ?")
            params.append(self.min_duration)
        if self.max_duration is not None:
            clauses.append("p.duration_s <= ?")
            params.append(self.max_duration)
        if self.min_height is not None:
            clauses.append("least(p.display_width, p.display_height) >= ?")
            params.append(self.min_height)
        if self.camera:
            clauses.append("(p.make ILIKE ? OR p.model ILIKE ?)")
            params += [f"%{self.camera}%"] * 2
        if self.since:
            clauses.append("p.creation_time >= CAST(? AS DATE)")
            params.append(self.since)
        if self.until:
            clauses.append("p.creation_time < CAST(? AS DATE) + INTERVAL 1 DAY")
            params.append(self.until)
        if self.has_speech is not None:
            clauses.append(("" if self.has_speech else "NOT ") + "coalesce(t.status = 'ok', false)")
        if self.scene_sql():
            clauses.append(
                f"p.checksum IN (SELECT q.checksum FROM scene_quality q WHERE {self.scene_sql()})"
            )
        return " AND ".join(clauses), params

    def active(self) -> bool:
        return bool(self.sql()[0])


def allowed_checksums(store: Store, filters: Filters) -> list[str] | None:
    where, params = filters.sql()
    if not where:
        return None
    table = store.sql(
        "SELECT DISTINCT p.checksum FROM probe p LEFT JOIN transcripts t USING (checksum)"
        f" WHERE {where}",
        params,
    )
    return table.column("checksum").to_pylist()


def in_good_scenes(store: Store, filters: Filters, hits: list[dict]) -> list[dict]:
    """The hits (with `time_s`, or `start` and `end`) inside a scene meeting the filters'
    scene conditions; all of them when there are none."""
    condition = filters.scene_sql()
    if not condition or not hits:
        return hits
    checksums = sorted({h["checksum"] for h in hits})
    scenes = store.sql(
        f"SELECT checksum, start_s, end_s FROM scene_quality q WHERE ({condition})"
        " AND list_contains(?, q.checksum)",
        [checksums],
    ).to_pylist()
    by_file: dict[str, list[tuple[float, float]]] = {}
    for scene in scenes:
        by_file.setdefault(scene["checksum"], []).append((scene["start_s"], scene["end_s"]))

    def inside(hit: dict) -> bool:
        start = hit.get("time_s", hit.get("start"))
        end = hit.get("time_s", hit.get("end", start))
        return any(a <= end and start < b for a, b in by_file.get(hit["checksum"], []))

    return [h for h in hits if inside(h)]


def appearances_meeting(store: Store, filters: Filters, files: list[dict]) -> list[dict]:
    """A person's appearances (`appearances`: per file, `checksum` and `ranges`) in files
    meeting the filters, each range inside a scene meeting their scene conditions."""
    if not filters.active():
        return files
    allowed = set(allowed_checksums(store, filters) or [])
    spans = [
        {"checksum": f["checksum"], "start": a, "end": b}
        for f in files
        if f["checksum"] in allowed
        for a, b in f["ranges"]
    ]
    kept: dict[str, list] = {}
    for span in in_good_scenes(store, filters, spans):
        kept.setdefault(span["checksum"], []).append([span["start"], span["end"]])
    return [{**f, "ranges": kept[f["checksum"]]} for f in files if f["checksum"] in kept]


def search_transcripts(
    text: str,
    limit: int = 20,
    data_dir: str | os.PathLike[str] | None = None,
    store: Store | None = None,
    filters: Filters | None = None,
) -> list[dict]:
    """Transcript segments containing every word of `text` (stemmed; "quoted phrases" stay
    phrases) in files meeting `filters`, and inside a scene meeting its scene conditions;
    best match first, each with the file's current path."""
    store = store or Store(settings.data_dir(data_dir))
    allowed = allowed_checksums(store, filters) if filters and filters.active() else None
    index = store.text_index()
    fetch = limit * 10 if filters and filters.scene_sql() else limit  # some fall outside
    while True:
        found = index.search(text, limit=fetch, checksums=allowed)
        hits = in_good_scenes(store, filters, found)[:limit] if filters else found
        if len(hits) >= limit or len(found) < fetch:
            break
        fetch *= 4  # the best matches were outside the scenes: look further down
    paths = store.registry.paths_for_checksums(h["checksum"] for h in hits)
    return [
        {
            "checksum": h["checksum"],
            "path": paths.get(h["checksum"]),
            "start": h["start"],
            "end": h["end"],
            "text": h["text"],
            "segment_index": h["segment_index"],
            "score": round(-h["rank"], 4),  # BM25: higher is better
        }
        for h in hits
    ]


def group_moments(hits: list[dict], gap_s: float) -> list[dict]:
    """Adjacent matching frames of one file become one moment (a time range); a moment scores
    as its best frame, and shows that frame's thumbnail."""
    by_file: dict[str, list[dict]] = {}
    for hit in hits:
        by_file.setdefault(hit["checksum"], []).append(hit)
    moments = []
    for checksum, file_hits in by_file.items():
        file_hits.sort(key=lambda h: h["time_s"])
        group = [file_hits[0]]
        for hit in [*file_hits[1:], None]:
            if hit is not None and hit["time_s"] - group[-1]["time_s"] <= gap_s:
                group.append(hit)
                continue
            best = max(group, key=lambda h: h["score"])
            moments.append(
                {
                    "checksum": checksum,
                    "start": round(group[0]["time_s"], 3),
                    "end": round(group[-1]["time_s"], 3),
                    "score": round(best["score"], 4),
                    "thumbnail": best["thumbnail"],
                    "frames": len(group),
                }
            )
            group = [hit] if hit is not None else []
    return sorted(moments, key=lambda m: -m["score"])


def search_moments(
    text: str | None = None,
    image: str | os.PathLike[str] | None = None,
    limit: int = 10,
    filters: Filters | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    every_s: float = EVERY_SECONDS,
    store: Store | None = None,
    model=None,
) -> list[dict]:
    """Semantic search: the moments whose frames are closest to a text or to a still (a path
    or a file object), using the configured CLIP model (DAM_CLIP_MODEL / DAM_CLIP_PRETRAINED)
    and only its vectors. A long-lived caller (the library page) passes its loaded `model`."""
    from PIL import Image

    from ..models.clip import ClipModel, ClipSettings

    if (text is None) == (image is None):
        raise ValueError("give a text or an image to search for")
    store = store or Store(settings.data_dir(data_dir))
    if model is None:
        model_name, pretrained = settings.clip_model()
        model = ClipModel(ClipSettings(model=model_name, pretrained=pretrained), store.models_dir)
    if text is not None:
        vector = model.embed_text([text])[0]
    else:
        with Image.open(image) as picture:
            vector = model.embed_images([picture.convert("RGB")])[0]
    allowed = allowed_checksums(store, filters) if filters and filters.active() else None
    hits = store.vectors.search(vector, model.id, limit=max(limit * 10, 50), checksums=allowed)
    for hit in hits:
        hit["score"] = 1.0 - float(hit.pop("_distance"))
    if filters is not None:
        hits = in_good_scenes(store, filters, hits)
    moments = group_moments(hits, gap_s=every_s * 1.5)[:limit]
    paths = store.registry.paths_for_checksums(m["checksum"] for m in moments)
    for moment in moments:
        moment["path"] = paths.get(moment["checksum"])
    return moments
