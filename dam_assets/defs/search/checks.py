"""The CLIP frames check: LanceDB and the catalog hold the same frames."""

from dagster import AssetCheckExecutionContext, asset_check

from ..common.checks import check_result, scope_of, where_in
from ..resources import DamStorage
from .clip_embeddings import clip_embeddings


@asset_check(
    asset=clip_embeddings,
    description="LanceDB vectors and the catalog's clip_frames"
    " rows are the same set: no orphan vectors, no rows without a vector.",
)
def vectors_match_catalog(context: AssetCheckExecutionContext, storage: DamStorage):
    store = storage.store()
    scope = scope_of(context)
    where, params = where_in(scope)
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
    return check_result(bad, len(catalog), "vectors == catalog rows")
