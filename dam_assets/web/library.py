"""What the library page shows, as plain data: search moments, one file's facts, people,
sessions and the indexing status. No web framework here (app.py serves it).

The page reads the lake through the same in-memory DuckDB views as the pipeline, but never
rebuilds `catalog.duckdb` nor purges lake files (`PageStore`). Its only writes are the ones a
person asks for: names and merges of people (people.sqlite and its `people`/`face_clusters`
snapshots, exactly as `dam faces label/merge`), and the transcript search cache.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..library.people import appearances, label_person, list_people, merge_people
from ..library.search import (
    Filters,
    allowed_checksums,
    in_good_scenes,
    search_moments,
    search_transcripts,
)
from ..media.proxy import proxy_path, proxy_reason
from ..storage import Store
from ..storage.paths import display_path

CHECKSUM = re.compile(r"[0-9a-f]{64}")
MAX_LIMIT = 200


class PageStore(Store):
    """A Store that only reads: queries never rewrite the catalog file or purge the lake
    (the pipeline's own processes do that)."""

    def refresh_catalog(self, force: bool = False) -> bool:
        return False


class NotServed(Exception):
    """A request for something that is not (or no longer) there: HTTP status and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def checked(checksum: str) -> str:
    """A checksum from a URL: 64 lowercase hex digits or nothing is looked up at all."""
    if not CHECKSUM.fullmatch(checksum or ""):
        raise NotServed(404, "not a checksum (64 hex digits)")
    return checksum


@dataclass
class Query:
    """One search as the page and the API take it: by meaning (q), spoken words (text), a
    person, or a still (image bytes), with the catalog filters of `dam search`."""

    q: str = ""
    text: str = ""
    person: str = ""
    image: bytes | None = None
    image_name: str = ""
    limit: int = 24
    filters: Filters = field(default_factory=Filters)

    @property
    def kind(self) -> str | None:
        given = [k for k in ("q", "text", "person") if getattr(self, k).strip()]
        if self.image:
            given.append("image")
        return given[0] if len(given) == 1 else ("many" if given else None)

    @property
    def label(self) -> str:
        if self.kind == "image":
            return f"looks like {self.image_name or 'the still'}"
        return {"q": self.q, "text": self.text, "person": self.person}.get(self.kind or "", "")


def _number(value: str | None, kind=float):
    if value is None or not str(value).strip():
        return None
    try:
        return kind(value)
    except ValueError:
        raise NotServed(400, f"{value!r} is not a number") from None


def _date(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise NotServed(400, f"{value!r} is not a date (YYYY-MM-DD)")
    return value.strip()


def query_from(params, image: bytes | None = None, image_name: str = "") -> Query:
    """A Query from URL or form parameters (q, text, person, limit and the filters:
    min_duration, max_duration, min_height, camera, since, until, speech=yes|no)."""
    speech = (params.get("speech") or "").lower()
    filters = Filters(
        min_duration=_number(params.get("min_duration")),
        max_duration=_number(params.get("max_duration")),
        min_height=_number(params.get("min_height"), int),
        camera=(params.get("camera") or "").strip() or None,
        since=_date(params.get("since")),
        until=_date(params.get("until")),
        has_speech={"yes": True, "no": False}.get(speech),
    )
    limit = _number(params.get("limit"), int) or 24
    query = Query(
        q=params.get("q") or "",
        text=params.get("text") or "",
        person=params.get("person") or "",
        image=image or None,
        image_name=image_name,
        limit=max(1, min(limit, MAX_LIMIT)),
        filters=filters,
    )
    mode = params.get("mode")  # the page's one box: q holds the words, mode says how to read them
    if mode in ("text", "person") and query.q and not (query.text or query.person):
        setattr(query, mode, query.q)
        query.q = ""
    return query


def thumb_url(checksum: str, path: str | None) -> str | None:
    """The URL of a derived picture in a file's thumbnails folder (never a path: the file's
    checksum and the names below its folder)."""
    if not path:
        return None
    parts = Path(path).parts
    if checksum not in parts:
        return None
    rest = parts[parts.index(checksum) + 1 :]
    return f"/thumbs/{checksum}/" + "/".join(rest) if rest else None


LOUD_FLOOR_DBFS = -60.0  # the loudness lane's zero: quieter seconds draw as no bar


def strip(rows: list[dict]) -> list[dict]:
    """The clip page's timeline strip, one column per second: brightness as a grey level,
    motion and loudness as bar heights in 0 .. 1 (None where the file has no such track)."""
    out = []
    for r in rows:
        loud = r["rms_dbfs"]
        out.append(
            {
                "second": r["second"],
                "grey": None if r["brightness"] is None else round(255 * r["brightness"]),
                "motion": None if r["motion"] is None else min(1.0, r["motion"] * 10),
                "loud": None
                if loud is None
                else max(0.0, min(1.0, (loud - LOUD_FLOOR_DBFS) / -LOUD_FLOOR_DBFS)),
                "silent": r["silent"],
            }
        )
    return out


class Library:
    """The page's view of one data folder; one per server process (the CLIP model stays
    loaded between searches)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        asset_status: Callable[[], list[dict]] | None = None,
        clip_model=None,
    ):
        self.store = PageStore(settings.data_dir(data_dir))
        self.asset_status = asset_status
        self.dagster_url = settings.dagster_url()
        self._model = clip_model  # a loaded ClipModel, else loaded at the first search
        self._model_lock = threading.Lock()

    # -- reading ----------------------------------------------------------------------------
    def sql(self, query: str, params: list | None = None) -> list[dict]:
        return self.store.sql(query, params).to_pylist()

    def clip_model(self):
        from ..models.clip import ClipModel, ClipSettings

        with self._model_lock:
            if self._model is None:
                name, pretrained = settings.clip_model()
                model = ClipModel(
                    ClipSettings(model=name, pretrained=pretrained), self.store.models_dir
                )
                self._model = model.load()
            return self._model

    def registered(self, checksum: str) -> bool:
        return bool(self.store.registry.paths_for_checksums([checksum]))

    def path_of(self, checksum: str) -> str | None:
        return display_path(self.store.registry.paths_for_checksums([checksum]).get(checksum))

    # -- search -----------------------------------------------------------------------------
    def search(self, query: Query) -> list[dict]:
        """Moments, best first: `checksum`, `path`, `start`, `end`, `score`, `thumbnail` (a
        URL), `clip` (the player at the moment), `sprite` (the scrub index, when there is one),
        and `text` for spoken words."""
        kind = query.kind
        if kind is None:
            return []
        if kind == "many":
            raise NotServed(400, "search by one of: q (meaning), text (words), person, image")
        filters = query.filters
        if kind == "text":
            hits = search_transcripts(
                query.text, limit=query.limit, store=self.store, filters=filters
            )
        elif kind == "person":
            hits = self.person_moments(query.person)
            if filters.active():  # in files that pass, inside scenes that pass
                allowed = set(allowed_checksums(self.store, filters) or [])
                hits = in_good_scenes(
                    self.store, filters, [h for h in hits if h["checksum"] in allowed]
                )
        else:
            image = io.BytesIO(query.image) if kind == "image" else None
            try:
                hits = search_moments(
                    text=query.q if kind == "q" else None,
                    image=image,
                    limit=query.limit,
                    filters=filters,
                    store=self.store,
                    model=self.clip_model(),
                )
            except OSError as exc:  # PIL: not an image
                raise NotServed(400, f"the dropped file is not a picture ({exc})") from None
        return self.moments(hits[: query.limit])

    def person_moments(self, who: str) -> list[dict]:
        from ..storage.people import PersonNotFound

        try:
            person = self.store.people.resolve(who)
        except PersonNotFound as exc:
            raise NotServed(404, str(exc)) from None
        tracks = self.sql(
            "SELECT checksum, start_s, end_s, distance FROM face_clusters WHERE person_id = ?",
            [person],
        )
        hits = []
        for entry in appearances(self.store, [person])[person]:
            for start, end in entry["ranges"]:
                near = [
                    t["distance"] or 0.0
                    for t in tracks
                    if t["checksum"] == entry["checksum"]
                    and t["start_s"] <= end
                    and t["end_s"] >= start
                ]
                score = round(1.0 - min(near, default=0.0), 4)
                hits.append({"checksum": entry["checksum"], "start": start, "end": end,
                             "score": score, "person_id": person})  # fmt: skip
        return sorted(hits, key=lambda h: -h["score"])

    def moments(self, hits: list[dict]) -> list[dict]:
        checksums = list(dict.fromkeys(h["checksum"] for h in hits))
        paths = self.store.registry.paths_for_checksums(checksums)
        pictures = self._pictures(checksums)
        out = []
        for h in hits:
            ck = h["checksum"]
            start, end = float(h["start"]), float(h["end"])
            thumb = thumb_url(ck, h.get("thumbnail")) or _picture_at(pictures.get(ck), start)
            moment = {
                "checksum": ck,
                "path": display_path(paths.get(ck)),
                "name": Path(display_path(paths.get(ck)) or ck).name,
                "start": round(start, 3),
                "end": round(end, 3),
                "score": h.get("score"),
                "thumbnail": thumb,
                "clip": f"/clip/{ck}?t={start:.3f}",
                "media": f"/media/{ck}",
                "sprite": pictures.get(ck, {}).get("sprite"),
            }
            if h.get("text"):
                moment["text"] = h["text"]
            out.append(moment)
        return out

    def _pictures(self, checksums: list[str]) -> dict[str, dict]:
        """Per file: its scene keyframes (time -> URL), small poster and sprite index URL."""
        found: dict[str, dict] = {ck: {"scenes": []} for ck in checksums}
        if not checksums:
            return found
        for r in self.sql(
            "SELECT checksum, kind, size_label, path FROM thumbnails WHERE list_contains($1,"
            " checksum) AND kind IN ('poster', 'sprite_vtt')",
            [checksums],
        ):
            if r["kind"] == "sprite_vtt":
                found[r["checksum"]]["sprite"] = thumb_url(r["checksum"], r["path"])
            elif r["size_label"] == "small":
                found[r["checksum"]]["poster"] = thumb_url(r["checksum"], r["path"])
        for r in self.sql(
            "SELECT checksum, start_s, keyframe_path FROM scenes WHERE list_contains($1,"
            " checksum) ORDER BY checksum, start_s",
            [checksums],
        ):
            found[r["checksum"]]["scenes"].append(
                (r["start_s"], thumb_url(r["checksum"], r["keyframe_path"]))
            )
        return found

    # -- one file ---------------------------------------------------------------------------
    def file(self, checksum: str) -> dict:
        """Everything the clip page shows about one file (also `GET /api/files/{checksum}`)."""
        checksum = checked(checksum)
        if not self.registered(checksum):
            raise NotServed(404, "no file with this checksum is registered")
        probe = next(iter(self.sql("SELECT * FROM probe WHERE checksum = ?", [checksum])), None)
        streams = self.sql(
            "SELECT * EXCLUDE (checksum) FROM streams WHERE checksum = ? ORDER BY stream_index",
            [checksum],
        )
        paths = self.sql(
            "SELECT path, missing, replaced, first_seen, last_seen FROM media_files"
            " WHERE checksum = ? ORDER BY missing, last_seen DESC",
            [checksum],
        )
        transcript = next(
            iter(self.sql("SELECT * FROM transcripts WHERE checksum = ?", [checksum])), None
        )
        segments = self.sql(
            "SELECT segment_index, start_s, end_s, text FROM transcript_segments"
            " WHERE checksum = ? ORDER BY start_s",
            [checksum],
        )
        scenes = [
            {**s, "keyframe": thumb_url(checksum, s.pop("keyframe_path"))}
            for s in self.sql(
                "SELECT scene_index, start_s, end_s, keyframe_path, keyframe_time_s FROM scenes"
                " WHERE checksum = ? ORDER BY start_s",
                [checksum],
            )
        ]
        people = self.sql(
            "SELECT c.person_id, p.name, min(c.start_s) AS first_s, count(*) AS tracks,"
            " list([c.start_s, c.end_s] ORDER BY c.start_s) AS ranges, any_value(p.crop) AS crop"
            " FROM face_clusters c LEFT JOIN people p USING (person_id) WHERE c.checksum = ?"
            " GROUP BY ALL ORDER BY first_s",
            [checksum],
        )
        for p in people:
            p["crop"] = _crop_url(p["crop"])
        capture = self.sql(
            "SELECT s.rig, s.camera, s.role, s.capture_start, s.timecode, y.session_id"
            " FROM capture_segments s LEFT JOIN capture_sync y USING (checksum)"
            " WHERE s.checksum = ?",
            [checksum],
        )
        timeline = self.sql(
            "SELECT second, brightness, motion, rms_dbfs, silent FROM timeline"
            " WHERE checksum = ? ORDER BY second",
            [checksum],
        )
        video = next((s for s in streams if s["stream_type"] == "video"), None)
        reason = proxy_reason(probe, video) if probe else None
        proxy = proxy_path(self.store.data_dir / "proxies", checksum)
        captions = self.store.captions_dir / f"{checksum}.vtt"
        sprite = self._pictures([checksum])[checksum].get("sprite")
        for row in paths:
            row["path"] = display_path(row["path"])
        if probe:
            probe["path"] = display_path(probe["path"])
        playable = reason is None or proxy.is_file()
        return {
            "checksum": checksum,
            "path": paths[0]["path"] if paths else None,
            "name": Path(paths[0]["path"]).name if paths else checksum,
            "paths": paths,
            "probe": probe,
            "streams": streams,
            "transcript": transcript,
            "segments": segments,
            "scenes": scenes,
            "timeline": strip(timeline),
            "people": people,
            "capture": capture,
            "proxy": {
                "needed": reason is not None,
                "why": reason,
                "ready": proxy.is_file(),
                "url": f"/proxy/{checksum}" if proxy.is_file() else None,
            },
            "play": (f"/proxy/{checksum}" if reason and proxy.is_file() else f"/media/{checksum}")
            if playable
            else None,
            "media": f"/media/{checksum}",
            "captions": f"/captions/{checksum}.vtt" if captions.is_file() else None,
            "sprite": sprite,
            "proxy_link": f"{self.dagster_url}/assets/proxies?view=partitions",
        }

    # -- people -----------------------------------------------------------------------------
    def people(self) -> list[dict]:
        people = list_people(self.store)
        where = appearances(self.store, [p["person_id"] for p in people])
        for p in people:
            p["crop"] = _crop_url(p["crop"])
            p["appearances"] = [
                {
                    **a,
                    "path": display_path(a["path"]),
                    "name": Path(display_path(a["path"]) or a["checksum"]).name,
                }
                for a in where[p["person_id"]]
            ]
        return people

    def person(self, who: str) -> dict:
        from ..storage.people import PersonNotFound

        try:
            pid = self.store.people.resolve(who)
        except PersonNotFound as exc:
            raise NotServed(404, str(exc)) from None
        found = [p for p in self.people() if p["person_id"] == pid]
        if not found:
            raise NotServed(404, f"person {pid} appears in no indexed file")
        return found[0]

    def label(self, who: str, name: str) -> str:
        """`dam faces label`: the same store call and the same snapshot afterwards."""
        person, name = label_person(self.store, who, name)
        return f"person {person} is now {name!r}"

    def merge(self, keep: str, other: str) -> str:
        """`dam faces merge`: `other` becomes part of `keep`."""
        keep_id, other_id, name = merge_people(self.store, keep, other)
        return f"person {other_id} merged into {keep_id}" + (f" ({name})" if name else "")

    # -- sessions ---------------------------------------------------------------------------
    def sessions(self) -> list[dict]:
        return self.sql(
            'SELECT session_id, rig, start, "end", segments, cameras, hero_checksum, fps'
            " FROM capture_sessions ORDER BY start DESC"
        )

    def session(self, session_id: str) -> dict:
        rows = self.sql("SELECT * FROM capture_sessions WHERE session_id = ?", [session_id])
        if not rows:
            raise NotServed(404, "no such capture session")
        cameras = self.sql(
            "SELECT y.*, s.path, s.duration_s, s.has_audio FROM capture_sync y"
            " LEFT JOIN capture_segments s USING (checksum) WHERE y.session_id = ?"
            " ORDER BY y.role = 'hero' DESC, y.camera, y.offset_s",
            [session_id],
        )
        for cam in cameras:
            facts = self.file(cam["checksum"])
            cam["path"] = display_path(cam["path"])
            cam["name"] = facts["name"]
            cam["play"] = facts["play"]
            cam["proxy"] = facts["proxy"]
        return {**rows[0], "cameras": cameras}

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict:
        files = self.sql(
            "SELECT count(*) FILTER (WHERE NOT missing) AS files,"
            " count(DISTINCT checksum) FILTER (WHERE content_present) AS contents,"
            " count(DISTINCT path) FILTER (WHERE missing AND NOT replaced) AS missing"
            " FROM media_files"
        )[0]
        errors = self.sql(
            "SELECT stage, path, checksum, error_type, message, occurred_at FROM ingest_errors"
            " ORDER BY occurred_at DESC LIMIT 500"
        )
        for e in errors:
            e["path"] = display_path(e["path"])
        skips = sorted(self.store.skips().values(), key=lambda s: s["stage"])
        return {
            "files": files,
            "assets": self._asset_status(),
            "errors": errors,
            "skips": skips,
            "dagster": self.dagster_url,
        }

    def _asset_status(self) -> dict:
        """Per asset, partitions materialized / failed / missing, as `dam status` reports them
        (the Dagster instance's view, handed in by `dam serve`), or why it is not shown."""
        if self.asset_status is None:
            return {"rows": [], "error": "this server was started without the Dagster instance"}
        try:
            return {"rows": self.asset_status(), "error": None}
        except Exception as exc:  # the instance is unreachable: the rest still tells a lot
            return {"rows": [], "error": f"{type(exc).__name__}: {exc}"}


def _picture_at(pictures: dict | None, time_s: float) -> str | None:
    """The keyframe of the scene playing at `time_s`, else the file's poster."""
    if not pictures:
        return None
    best = None
    for start, url in pictures["scenes"]:
        if start <= time_s + 1e-6 and url:
            best = url
    return best or pictures.get("poster")


def _crop_url(path: str | None) -> str | None:
    if not path:
        return None
    found = [p for p in Path(path).parts if CHECKSUM.fullmatch(p)]
    return thumb_url(found[-1], path) if found else None
