"""Checks of the media assets: probe rows, thumbnail files, scene coverage, transcripts."""

from pathlib import Path

import polars as pl
from dagster import AssetCheckExecutionContext, AssetCheckResult, asset_check

from ..common.checks import all_partitions, check_result, materialized_keys, scope_of, where_in
from ..resources import DamStorage
from .probe import probe
from .scenes import scenes
from .thumbnails import thumbnails
from .transcripts import transcripts


@asset_check(
    asset=probe,
    description="One probe row per partition (except files recorded in"
    " ingest_errors at the probe stage), and never two.",
)
def probe_one_row_per_partition(
    context: AssetCheckExecutionContext, storage: DamStorage
) -> AssetCheckResult:
    store = storage.store()
    scope = scope_of(context)
    keys = all_partitions(context) if scope is None else scope
    where, params = where_in(scope)
    counts = store.frame(
        f"SELECT checksum, count(*) n FROM probe WHERE {where} GROUP BY ALL", params
    )
    failed = store.frame(
        f"SELECT DISTINCT checksum FROM ingest_errors WHERE stage = 'probe' AND {where}", params
    )
    materialized = materialized_keys(context, probe.key, keys)
    bad = (
        pl.DataFrame({"checksum": materialized}, schema={"checksum": pl.String})
        .join(counts, on="checksum", how="left")
        .join(failed.with_columns(failed=pl.lit(True)), on="checksum", how="left")
        .filter((pl.col("n") > 1) | (pl.col("n").is_null() & pl.col("failed").is_null()))
    )["checksum"].to_list()
    return check_result(bad, len(materialized), "exactly one row per probed file")


@asset_check(
    asset=thumbnails,
    description="Every thumbnail, sprite and index file in the table exists on disk.",
)
def thumbnail_files_exist(context: AssetCheckExecutionContext, storage: DamStorage):
    where, params = where_in(scope_of(context))
    rows = (
        storage.store()
        .sql(f"SELECT DISTINCT checksum, path FROM thumbnails WHERE {where}", params)
        .to_pylist()
    )
    bad = sorted({r["checksum"] for r in rows if not Path(r["path"]).is_file()})
    return check_result(bad, len(rows), "thumbnail files present")


@asset_check(
    asset=scenes,
    description="Scenes of each video start at 0, follow each other"
    " without gaps and end at the video's duration (within a frame).",
)
def scenes_cover_duration(context: AssetCheckExecutionContext, storage: DamStorage):
    where, params = where_in(scope_of(context), "s.")
    per_file = storage.store().frame(
        "SELECT s.checksum, min(s.start_s) first, max(s.end_s) last, sum(s.duration_s) total,"
        " any_value(s.fps) fps, any_value(p.duration_s) duration"
        f" FROM scenes s JOIN probe p USING (checksum) WHERE {where} GROUP BY s.checksum",
        params,
    )
    first, last, duration = pl.col("first"), pl.col("last"), pl.col("duration")
    slack = 1.5 / pl.when(pl.col("fps") > 0).then(pl.col("fps")).otherwise(25) + 0.05
    gap = (first > slack) | ((pl.col("total") - (last - first)).abs() > slack)  # hole, overlap
    short = (duration > 0) & ((last - duration).abs() > slack + 0.1)  # ends before the file
    bad = per_file.filter(gap | short.fill_null(False))["checksum"].to_list()
    return check_result(bad, per_file.height, "scenes cover each video")


@asset_check(
    asset=transcripts,
    description="Every probed file with audio has a transcript row,"
    " and every transcript with segments has its caption files.",
)
def transcript_for_every_file_with_audio(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    scope = scope_of(context)
    where, params = where_in(scope, "p.")
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
    where, params = where_in(scope)
    captions = store.sql(
        f"SELECT checksum, vtt_path, srt_path FROM transcripts WHERE segments > 0 AND {where}",
        params,
    ).to_pylist()
    no_files = [
        r["checksum"]
        for r in captions
        if not (Path(r["vtt_path"]).is_file() and Path(r["srt_path"]).is_file())
    ]
    return check_result(sorted(set(missing + no_files)), len(captions), "transcripts and captions")
