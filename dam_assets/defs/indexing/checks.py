"""Asset checks: the tables, the files on disk and the vectors agree with each other.

A check that runs with an index run looks at that run's partitions only (its partition range),
so ingesting a library costs what its runs cost, not the square of its size. Run without a
range (the nightly `check_library` job, or from the UI), a check looks at the whole library and
so also catches damage done outside a run. A failing check names the partitions (checksums).
"""

from pathlib import Path

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    asset_check,
    define_asset_job,
)

from ..common.partitions import MEDIA_PARTITIONS_NAME
from ..common.ranges import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG
from ..media.probe import probe
from ..media.scenes import scenes
from ..media.thumbnails import thumbnails
from ..media.transcripts import transcripts
from ..people.face_clusters import face_clusters
from ..people.faces import faces
from ..resources import DamStorage
from ..rigs.capture import capture_segments, capture_sessions
from ..search.clip_embeddings import clip_embeddings

SHOW = 20  # partitions named in a failing check's metadata


def _result(bad: list[str], checked: int, what: str) -> AssetCheckResult:
    return AssetCheckResult(
        passed=not bad,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "checked": checked,
            "failing": len(bad),
            "partitions": ", ".join(sorted(bad)[:SHOW]) + (" …" if len(bad) > SHOW else ""),
            "rule": what,
        },
    )


def _partitions(context: AssetCheckExecutionContext) -> list[str]:
    return list(context.instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))


def _scope(context: AssetCheckExecutionContext) -> list[str] | None:
    """The partitions of the run (its range, or its one partition), or None: all of them
    (also when the check is called directly, outside a run)."""
    try:
        tags = context.run.tags
    except Exception:  # invoked directly: Dagster has no run to give (its error is private)
        return None
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start or not end:
        return None
    keys = _partitions(context)
    first, last = keys.index(start), keys.index(end)
    return keys[first : last + 1]


def _where(scope: list[str] | None, alias: str = "") -> tuple[str, list]:
    """A SQL condition (and its parameter) limiting rows to the scope's checksums."""
    if scope is None:
        return "TRUE", []
    return f"list_contains($1, {alias}checksum)", [scope or [""]]


@asset_check(
    asset=probe,
    description="One probe row per partition (except files recorded in"
    " ingest_errors at the probe stage), and never two.",
)
def probe_one_row_per_partition(
    context: AssetCheckExecutionContext, storage: DamStorage
) -> AssetCheckResult:
    store = storage.store()
    scope = _scope(context)
    keys = _partitions(context) if scope is None else scope
    where, params = _where(scope)
    counts = {
        r["checksum"]: r["n"]
        for r in store.sql(
            f"SELECT checksum, count(*) n FROM probe WHERE {where} GROUP BY ALL", params
        ).to_pylist()
    }
    failed = set(
        store.sql(
            f"SELECT DISTINCT checksum FROM ingest_errors WHERE stage = 'probe' AND {where}",
            params,
        )
        .column("checksum")
        .to_pylist()
    )
    materialized = _materialized(context, probe.key, keys)
    bad = [
        k for k in materialized if counts.get(k, 0) > 1 or (k not in failed and not counts.get(k))
    ]
    return _result(bad, len(materialized), "exactly one row per probed file")


def _materialized(context: AssetCheckExecutionContext, key, keys: list[str]) -> list[str]:
    from ..common.partitions import media_partitions

    status = context.instance.get_status_by_partition(key, keys, media_partitions) or {}
    return [k for k in keys if getattr(status.get(k), "value", None) == "MATERIALIZED"]


@asset_check(
    asset=thumbnails,
    description="Every thumbnail, sprite and index file in the table exists on disk.",
)
def thumbnail_files_exist(context: AssetCheckExecutionContext, storage: DamStorage):
    where, params = _where(_scope(context))
    rows = (
        storage.store()
        .sql(f"SELECT DISTINCT checksum, path FROM thumbnails WHERE {where}", params)
        .to_pylist()
    )
    bad = sorted({r["checksum"] for r in rows if not Path(r["path"]).is_file()})
    return _result(bad, len(rows), "thumbnail files present")


@asset_check(
    asset=scenes,
    description="Scenes of each video start at 0, follow each other"
    " without gaps and end at the video's duration (within a frame).",
)
def scenes_cover_duration(context: AssetCheckExecutionContext, storage: DamStorage):
    where, params = _where(_scope(context), "s.")
    rows = (
        storage.store()
        .sql(
            "SELECT s.checksum, min(s.start_s) first, max(s.end_s) last, sum(s.duration_s) total,"
            " any_value(s.fps) fps, any_value(p.duration_s) duration"
            f" FROM scenes s JOIN probe p USING (checksum) WHERE {where} GROUP BY s.checksum",
            params,
        )
        .to_pylist()
    )
    bad = []
    for r in rows:
        slack = 1.5 / (r["fps"] or 25) + 0.05
        if (
            r["first"] > slack
            or abs(r["total"] - (r["last"] - r["first"])) > slack
            or (r["duration"] and abs(r["last"] - r["duration"]) > slack + 0.1)
        ):
            bad.append(r["checksum"])
    return _result(bad, len(rows), "scenes cover each video")


@asset_check(
    asset=transcripts,
    description="Every probed file with audio has a transcript row,"
    " and every transcript with segments has its caption files.",
)
def transcript_for_every_file_with_audio(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    scope = _scope(context)
    where, params = _where(scope, "p.")
    missing = (
        store.sql(
            "SELECT p.checksum FROM probe p LEFT JOIN transcripts t USING (checksum)"
            f" WHERE {where} AND p.audio_streams > 0 AND t.checksum IS NULL AND p.checksum NOT IN"
            " (SELECT checksum FROM ingest_errors WHERE stage = 'transcripts')",
            params,
        )
        .column("checksum")
        .to_pylist()
    )
    where, params = _where(scope)
    captions = store.sql(
        f"SELECT checksum, vtt_path, srt_path FROM transcripts WHERE segments > 0 AND {where}",
        params,
    ).to_pylist()
    no_files = [
        r["checksum"]
        for r in captions
        if not (Path(r["vtt_path"]).is_file() and Path(r["srt_path"]).is_file())
    ]
    return _result(sorted(set(missing + no_files)), len(captions), "transcripts and captions")


@asset_check(
    asset=clip_embeddings,
    description="LanceDB vectors and the catalog's clip_frames"
    " rows are the same set: no orphan vectors, no rows without a vector.",
)
def vectors_match_catalog(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    scope = _scope(context)
    where, params = _where(scope)
    catalog = {
        (r["checksum"], round(r["time_s"], 3), r["model_id"])
        for r in store.sql(
            f"SELECT checksum, time_s, model_id FROM clip_frames WHERE {where}", params
        ).to_pylist()
    }
    lance = {
        (r["checksum"], round(r["time_s"], 3), r["model_id"])
        for r in store.vectors.rows(("checksum", "time_s", "model_id"), scope).to_pylist()
    }
    bad = sorted({k[0] for k in catalog ^ lance})
    return _result(bad, len(catalog), "vectors == catalog rows")


@asset_check(
    asset=capture_segments,
    description="Every capture segment is a file of a configured rig, with a capture start.",
)
def segments_have_rig_and_start(context: AssetCheckExecutionContext, storage: DamStorage):
    from ...library.rigs import load_rigs

    rigs = {r.name for r in load_rigs().rigs}
    where, params = _where(_scope(context))
    rows = (
        storage.store()
        .sql(f"SELECT checksum, rig, capture_start FROM capture_segments WHERE {where}", params)
        .to_pylist()
    )
    bad = sorted(
        {r["checksum"] for r in rows if r["rig"] not in rigs or r["capture_start"] is None}
    )
    return _result(bad, len(rows), "segments belong to a rig and have a start")


@asset_check(asset=capture_sessions, description="Sessions reference only existing partitions.")
def sessions_reference_existing_partitions(
    context: AssetCheckExecutionContext, storage: DamStorage
):
    keys = set(_partitions(context))
    used = (
        storage.store()
        .sql("SELECT DISTINCT checksum FROM capture_sync")
        .column("checksum")
        .to_pylist()
    )
    bad = [k for k in used if k not in keys]
    return _result(bad, len(used), "capture_sync checksums are partitions")


@asset_check(
    asset=faces,
    description="Faces and tracks agree with their LanceDB vectors, every face's track exists,"
    " and every crop is on disk.",
)
def faces_match_vectors_and_crops(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    scope = _scope(context)
    where, params = _where(scope)
    rows = store.sql(
        f"SELECT checksum, face_id, track_id, crop FROM faces WHERE {where}", params
    ).to_pylist()
    tracks = store.sql(f"SELECT checksum, track_id FROM face_tracks WHERE {where}", params)
    tracks = tracks.to_pylist()
    lance_faces = {r["row_id"] for r in store.face_vectors.rows(("row_id",), scope).to_pylist()}
    lance_tracks = {r["row_id"] for r in store.track_vectors.rows(("row_id",), scope).to_pylist()}
    track_ids = {t["track_id"] for t in tracks}
    bad = {r["checksum"] for r in rows if r["face_id"] not in lance_faces}
    bad |= {r["checksum"] for r in rows if r["track_id"] and r["track_id"] not in track_ids}
    bad |= {r["checksum"] for r in rows if not Path(r["crop"]).is_file()}
    bad |= {t["checksum"] for t in tracks if t["track_id"] not in lance_tracks}
    orphans = (lance_faces - {r["face_id"] for r in rows}) | (lance_tracks - track_ids)
    bad |= {o.split(":")[0] for o in orphans}
    return _result(sorted(bad), len(rows), "faces == vectors, tracks exist, crops on disk")


@asset_check(
    asset=face_clusters,
    description="Every placed track exists, and no person holds two faces seen in one frame.",
)
def people_are_consistent(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    clash = store.sql(
        "SELECT DISTINCT f.checksum FROM faces f JOIN face_clusters c USING (track_id)"
        " GROUP BY f.checksum, f.time_s, c.person_id HAVING count(*) > 1"
    )
    orphans = store.sql(
        "SELECT DISTINCT c.checksum FROM face_clusters c ANTI JOIN face_tracks t USING (track_id)"
    )
    bad = clash.column(0).to_pylist() + orphans.column(0).to_pylist()
    placed = store.sql("SELECT count(*) FROM face_clusters").column(0)[0].as_py()
    return _result(sorted(set(bad)), placed, "tracks exist; one face per person per frame")


CHECKS = [
    probe_one_row_per_partition,
    thumbnail_files_exist,
    scenes_cover_duration,
    transcript_for_every_file_with_audio,
    vectors_match_catalog,
    faces_match_vectors_and_crops,
    people_are_consistent,
    segments_have_rig_and_start,
    sessions_reference_existing_partitions,
]


# The whole library, nightly: the checks that runs make look only at their own partitions.
check_library = define_asset_job(
    "check_library",
    selection=AssetSelection.checks(*CHECKS),
    description="Every asset check over the whole library (runs check only their partitions).",
)
