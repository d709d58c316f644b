"""Checks of faces and people: vectors, crops, tracks, one face per person per frame."""

from pathlib import Path

import polars as pl
from dagster import AssetCheckExecutionContext, asset_check

from ..common.checks import check_result, scope_of, where_in
from ..resources import DamStorage
from .face_clusters import face_clusters
from .faces import faces


@asset_check(
    asset=faces,
    description="Faces and tracks agree with their LanceDB vectors, every face's track exists,"
    " and every crop is on disk.",
)
def faces_match_vectors_and_crops(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    scope = scope_of(context)
    where, params = where_in(scope)
    found = store.frame(
        f"SELECT checksum, face_id, track_id, crop FROM faces WHERE {where}", params
    )
    tracks = store.frame(f"SELECT checksum, track_id FROM face_tracks WHERE {where}", params)
    lance_faces = pl.from_arrow(store.face_vectors.rows(("row_id",), scope)).rename(
        {"row_id": "face_id"}
    )
    lance_tracks = pl.from_arrow(store.track_vectors.rows(("row_id",), scope)).rename(
        {"row_id": "track_id"}
    )
    on_disk = found["crop"].map_elements(lambda p: Path(p).is_file(), return_dtype=pl.Boolean)
    bad_rows = [
        found.join(lance_faces, on="face_id", how="anti"),  # a face without its vector
        found.filter(pl.col("track_id").is_not_null()).join(tracks, on="track_id", how="anti"),
        found.filter(~on_disk),  # the crop is gone
        tracks.join(lance_tracks, on="track_id", how="anti"),  # a track without its vector
    ]
    orphans = pl.concat(  # vectors whose rows are gone; their checksum leads the row id
        [
            lance_faces.join(found, on="face_id", how="anti")["face_id"],
            lance_tracks.join(tracks, on="track_id", how="anti")["track_id"],
        ]
    )
    bad = set(pl.concat([b["checksum"] for b in bad_rows]).to_list())
    bad |= set(orphans.str.split(":").list.first().to_list())
    return check_result(sorted(bad), found.height, "faces == vectors, tracks exist, crops on disk")


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
    return check_result(sorted(set(bad)), placed, "tracks exist; one face per person per frame")
