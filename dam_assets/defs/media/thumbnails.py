from collections.abc import Iterator

from dagster import AssetExecutionContext

from ...media.thumbnails import image_thumbnails, video_thumbnails
from ...storage.schemas import THUMBNAILS, rows_to_table
from ..common.batch import probe_rows, run_per_partition
from ..common.partitions import per_file_asset
from ..common.results import not_upstream, per_file_results
from ..resources import DamStorage
from .probe import probe


@per_file_asset(
    deps=[probe],
    group_name="media",
    kinds={"pyav", "pillow", "parquet"},
    code_version="thumbnails-1",
    description="Poster frame picked by a quality score (two sizes) and a scrub sprite sheet with"
    " a WebVTT index, from keyframes only. Files under thumbnails/, rows in `thumbnails`."
    " Audio-only files get none.",
)
def thumbnails(context: AssetExecutionContext, storage: DamStorage) -> Iterator:
    store = storage.store()
    keys = list(context.partition_keys)
    probed = probe_rows(store, keys)
    # Files that failed probe were recorded there; nothing to add here.
    todo = [k for k in keys if k in probed]
    written = {"poster": 0, "tile": 0}

    def work(checksum: str, path: str) -> dict:
        info = probed[checksum]
        out_dir = store.media_dir(store.thumbnails_dir, checksum)
        if info["media_kind"] == "video":
            result = video_thumbnails(path, out_dir, info["duration_s"])
        elif info["media_kind"] == "image":
            result = image_thumbnails(path, out_dir)
        else:
            result = None  # audio: no picture, and that is not an error
        rows = [{"checksum": checksum, **r} for r in (result.rows if result else [])]
        store.lake.write_unit("thumbnails", checksum, rows_to_table(THUMBNAILS, rows))
        for r in rows:
            if r["kind"] in written:
                written[r["kind"]] += 1
        if result is None:
            return {"kind": "audio", "thumbnails": 0}
        meta = {"thumbnails": len(rows), "poster_score": result.poster_score}
        if result.poster_time is not None:
            meta["poster_time_s"] = round(result.poster_time, 3)
        posters = [r["path"] for r in rows if r["kind"] == "poster"]
        if posters:
            meta["poster"] = posters[-1]
        return meta

    def forget(checksum: str) -> None:  # no stale rows survive a failed re-run
        store.lake.clear_unit("thumbnails", checksum)

    outcome = run_per_partition(context, store, "thumbnails", todo, work, on_failure=forget)
    not_upstream(outcome, keys, set(probed), "probe")
    metadata = outcome.metadata()
    metadata.update(posters=written["poster"], tiles=written["tile"])
    yield from per_file_results(context, outcome, metadata)
