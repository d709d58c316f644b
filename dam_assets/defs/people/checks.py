"""Checks of faces and people: vectors, crops, tracks, one face per person per frame."""

from pathlib import Path

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
    return check_result(sorted(bad), len(rows), "faces == vectors, tracks exist, crops on disk")


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
