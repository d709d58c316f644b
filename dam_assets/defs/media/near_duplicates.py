from dagster import AssetExecutionContext, MaterializeResult, asset, define_asset_job

from ...library.dupes import hashed_videos, refresh_near_duplicates
from ...media.near_dupes import groups
from ..resources import DamStorage
from .scenes import scenes


@asset(
    deps=[scenes],
    group_name="media",
    kinds={"numpy", "parquet"},
    code_version="near-duplicates-2",  # 2: cropped copies
    description="Near-duplicate video library-wide: per-second dHashes (from scenes) matched"
    " second by second at one offset, so re-encodes, resizes, remuxes and trimmed copies"
    " group and a trimmed copy gets its offset in the longer file; a cropped copy's whole"
    " picture matches the middle of the original's (kind `cropped`); different clips of one"
    " scene do not. Table `near_duplicates`; `dam dupes`.",
)
def near_duplicates(context: AssetExecutionContext, storage: DamStorage) -> MaterializeResult:
    store = storage.store()
    videos = hashed_videos(store)  # before reading them: a newer video makes this stale
    matches = refresh_near_duplicates(store)
    found = groups(matches)
    kinds = {
        k: sum(m.kind == k for m in matches) for k in ("same", "contained", "overlap", "cropped")
    }
    context.log.info(f"{len(matches)} near-duplicate pairs in {len(found)} groups")
    metadata = {"pairs": len(matches), "groups": len(found), "hashed_videos": videos, **kinds}
    return MaterializeResult(metadata=metadata)


near_duplicates_job = define_asset_job(
    "find_near_duplicates",
    selection=[near_duplicates],
    description="Group near-duplicate video across the library: requested by the sensor when"
    " the set of hashed videos changed, and by `dam dupes` when its table is out of date.",
)
