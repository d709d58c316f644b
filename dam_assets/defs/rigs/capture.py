import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, asset

from ...library.rigs import load_rigs
from ...media.audio_sync import scan_track
from ...media.capture import capture_start, gopro_chapter
from ...media.output import write_text
from ...media.sessions import group_sessions, link_takes, sync_session
from ...storage.paths import display_path
from ...storage.schemas import CAPTURE_SEGMENTS, CAPTURE_SESSIONS, CAPTURE_SYNC, rows_to_table
from ..common.batch import probe_rows, run_per_partition
from ..common.partitions import per_file_asset
from ..common.results import not_upstream, per_file_results
from ..media.probe import probe
from ..resources import DamStorage


@per_file_asset(
    deps=[probe],
    group_name="rigs",
    kinds={"pyav", "parquet"},
    code_version="capture-segments-1",
    description="For files of a camera rig (rigs.yaml / `dam ingest --rig`): rig, camera, role,"
    " capture start and its source (timecode, sidecar, creation_time, file name, mtime), start"
    " timecode, duration, audio, GoPro chapters. Files outside any rig get no row.",
)
def capture_segments(context: AssetExecutionContext, storage: DamStorage) -> Iterator:
    store = storage.store()
    rigs = load_rigs()
    keys = list(context.partition_keys)
    probed = probe_rows(store, keys)
    where = store.locations(keys)
    found = 0

    def work(checksum: str, path: str) -> dict:
        nonlocal found
        info = probed[checksum]
        rows = []
        for candidate in dict.fromkeys([path, *where.present_paths(checksum)]):
            hint = where.rig_hint(candidate, checksum)  # this content at this path, not a name
            if hint and hint[0] in {r.name for r in rigs.rigs}:
                rig_name, root = hint
                rig = rigs.by_name(rig_name)
                camera = rig.camera_for(candidate, root=Path(root))
            else:  # no hint, or its rig is gone from rigs.yaml
                located = rigs.locate(candidate)
                rig, camera = located if located else (None, None)
            if rig is None or camera is None:
                continue
            identity = where.identity(candidate, checksum)
            fps = info["fps_avg"]
            start = capture_start(
                Path(candidate),
                info["timecode"],
                fps,
                info["creation_time"],
                info["duration_s"],
                identity[1] if identity else None,
                camera.creation_time_is_stop,
            )
            chapter = gopro_chapter(Path(candidate).name)
            rows.append(
                {
                    "checksum": checksum,
                    "path": display_path(candidate),
                    "rig": rig.name,
                    "camera": camera.id,
                    "role": camera.role,
                    "capture_start": start.start,
                    "start_source": start.source,
                    "timecode": start.timecode,
                    "timecode_fps": fps if start.timecode else None,
                    "drop_frame": start.drop_frame,
                    "duration_s": info["duration_s"],
                    "has_audio": (info["audio_streams"] or 0) > 0,
                    "audio_sample_rate": info["audio_sample_rate"],
                    "video_codec": info["video_codec"],
                    "width": info["width"],
                    "height": info["height"],
                    "fps": fps,
                    "chapter_group": chapter.group if chapter else None,
                    "chapter_index": chapter.index if chapter else None,
                }
            )
            break  # one row per content: the first path that lies in a rig
        store.lake.write_unit("capture_segments", checksum, rows_to_table(CAPTURE_SEGMENTS, rows))
        found += len(rows)
        return {"rig": rows[0]["rig"], "camera": rows[0]["camera"]} if rows else {}

    outcome = run_per_partition(
        context, store, "capture_segments", [k for k in keys if k in probed], work
    )
    not_upstream(outcome, keys, set(probed), "probe")
    metadata = outcome.metadata()
    metadata.update(segments=found, rigs=len(rigs.rigs))
    yield from per_file_results(context, outcome, metadata)


@asset(
    deps=[capture_segments, probe],
    group_name="rigs",
    kinds={"numpy", "parquet"},
    code_version="capture-sessions-1",
    pool="audio_sync",
    description="Segments of one rig that overlap in time, as sessions; each segment's offset to"
    " the hero camera by audio cross-correlation over the whole overlap (sub-frame, drift in"
    " ppm), solved jointly across cameras; timecode or capture times below the confidence"
    " threshold. Tables `capture_sessions`, `capture_sync`; JSON/CSV exports per session.",
)
def capture_sessions(context: AssetExecutionContext, storage: DamStorage) -> MaterializeResult:
    store = storage.store()
    rigs = {r.name: r for r in load_rigs().rigs}
    store.refresh_catalog()
    segments = store.sql("SELECT * FROM capture_segments ORDER BY capture_start").to_pylist()
    where = store.locations(s["checksum"] for s in segments)
    for seg in segments:  # read the audio from wherever the file is now
        present = where.present_paths(seg["checksum"])
        if seg["path"] not in present and present:
            seg["path"] = present[0]
    takes = link_takes(segments)
    session_rows, sync_rows = [], []
    exports = store.data_dir / "exports"
    for rig_name in sorted({s["rig"] for s in segments}):
        rig = rigs.get(rig_name)
        gap = rig.session_gap_s if rig else 30.0
        threshold = rig.min_confidence if rig else 0.3
        for session in group_sessions([s for s in segments if s["rig"] == rig_name], gap):
            hero, rows = sync_session(session, scan_track, threshold)
            fps = hero.get("fps") or 25.0
            start = min(s["capture_start"] for s in session)
            session_id = f"{rig_name}-{start.astimezone(UTC):%Y%m%d-%H%M%S}"
            by_ck = {s["checksum"]: s for s in session}
            synced = []
            for row in rows:
                seg = by_ck[row.checksum]
                synced.append(
                    {
                        "session_id": session_id,
                        "checksum": row.checksum,
                        "camera": seg["camera"],
                        "role": seg["role"],
                        "take": takes.get(row.checksum),
                        "offset_s": row.offset_s,
                        "offset_frames": None if row.offset_s is None else row.offset_s * fps,
                        "method": row.method,
                        "confidence": row.confidence,
                        "drift_ppm": row.drift_ppm,
                        "consistent": row.consistent,
                        "note": row.note,
                    }
                )
            json_path, csv_path = write_exports(
                exports, session_id, rig_name, hero, session, synced, fps
            )
            end = max(s["capture_start"].timestamp() + (s["duration_s"] or 0) for s in session)
            session_rows.append(
                {
                    "session_id": session_id,
                    "rig": rig_name,
                    "start": start,
                    "end": datetime.fromtimestamp(end, UTC),
                    "segments": len(session),
                    "cameras": ",".join(sorted({s["camera"] for s in session})),
                    "hero_checksum": hero["checksum"],
                    "fps": fps,
                    "export_json": str(json_path),
                    "export_csv": str(csv_path),
                }
            )
            sync_rows += synced
            audio = sum(1 for r in synced if r["method"] == "audio")
            context.log.info(f"{session_id}: {len(session)} segments, {audio} synced by audio")
    store.lake.write_snapshot("capture_sessions", rows_to_table(CAPTURE_SESSIONS, session_rows))
    store.lake.write_snapshot("capture_sync", rows_to_table(CAPTURE_SYNC, sync_rows))
    return MaterializeResult(
        metadata={
            "sessions": len(session_rows),
            "segments": len(sync_rows),
            "synced_by_audio": sum(1 for r in sync_rows if r["method"] == "audio"),
            "inconsistent": sum(1 for r in sync_rows if r["consistent"] is False),
        }
    )


def write_exports(
    folder: Path,
    session_id: str,
    rig: str,
    hero: dict,
    session: list[dict],
    synced: list[dict],
    fps: float,
) -> tuple[Path, Path]:
    """The hero + witness tracker export VFX tools read: JSON, and the same as CSV."""
    by_ck = {s["checksum"]: s for s in session}
    cameras: dict[str, dict] = {}
    for row in synced:
        seg = by_ck[row["checksum"]]
        cam = cameras.setdefault(
            seg["camera"], {"camera": seg["camera"], "role": seg["role"], "files": []}
        )
        cam["files"].append(
            {
                "path": seg["path"],
                "checksum": seg["checksum"],
                "take": row["take"],
                "chapter": seg["chapter_index"],
                "timecode": seg["timecode"],
                "capture_start": seg["capture_start"].isoformat() if seg["capture_start"] else None,
                "duration_s": seg["duration_s"],
                "offset_s": row["offset_s"],
                "offset_frames": row["offset_frames"],
                "method": row["method"],
                "confidence": row["confidence"],
                "drift_ppm": row["drift_ppm"],
                "consistent": row["consistent"],
                "note": row["note"],
            }
        )
    document = {
        "session": session_id,
        "rig": rig,
        "fps": fps,
        "hero": {"camera": hero["camera"], "path": hero["path"], "timecode": hero["timecode"]},
        "offsets_are": "seconds from the hero file's start to this file's start (hero timeline)",
        "cameras": list(cameras.values()),
    }
    json_path = _inside(folder, f"{session_id}.json")
    write_text(json.dumps(document, indent=1), json_path)
    buffer = io.StringIO()
    fields = [
        "camera",
        "role",
        "path",
        "timecode",
        "offset_s",
        "offset_frames",
        "method",
        "confidence",
        "drift_ppm",
        "take",
        "chapter",
    ]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for cam in cameras.values():
        for f in cam["files"]:
            writer.writerow({"camera": cam["camera"], "role": cam["role"], **f})
    csv_path = _inside(folder, f"{session_id}.csv")
    write_text(buffer.getvalue(), csv_path)
    return json_path, csv_path


def _inside(folder: Path, name: str) -> Path:
    """An export file in `folder`: a session id from an odd rig name never leaves it."""
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or name.startswith("."):
        raise ValueError(f"export name {name!r} would leave {folder}")
    return path
