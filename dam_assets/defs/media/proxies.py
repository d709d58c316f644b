"""Browser proxies: a small H.264 copy of each video whose original a browser cannot play.

Not part of `index_media`: on 2 cores a proxy costs about one more full decode of the file
(1.0-1.2x, `make bench`, benchmarks/library_page.py), slower than real time for 1080p ProRes,
and nothing in search needs it. Its own job (`make_proxies`) runs it, the
`nightly_proxies` schedule asks for it for the files that need one, and the UI can backfill it.
"""

from collections.abc import Iterator

from dagster import AssetExecutionContext

from ...media.proxy import make_proxy, proxy_path, proxy_reason
from ..common.batch import probe_rows, run_per_partition
from ..common.partitions import per_file_asset
from ..common.results import not_upstream, per_file_results
from ..resources import DamStorage
from .probe import probe


def main_video_streams(store, keys: list[str]) -> dict[str, dict]:
    """Each file's first video stream row (its pix_fmt decides whether H.264 plays)."""
    first: dict[str, dict] = {}
    for row in store.lake.read_units("streams", keys).to_pylist():
        if row["stream_type"] == "video":
            held = first.get(row["checksum"])
            if held is None or row["stream_index"] < held["stream_index"]:
                first[row["checksum"]] = row
    return first


@per_file_asset(
    deps=[probe],
    group_name="media",
    kinds={"pyav", "x264"},
    code_version="proxies-1",
    pool="proxies",
    description="A 640 px H.264/AAC MP4 for each video a browser cannot play as it is (ProRes,"
    " DNxHD, HEVC, MXF, 10-bit or 4:2:2 H.264), for the library page (`dam serve`). Files under"
    " proxies/; files that play as they are get none. Its own job (make_proxies) and the"
    " nightly_proxies schedule: not part of index_media.",
)
def proxies(context: AssetExecutionContext, storage: DamStorage) -> Iterator:
    store = storage.store()
    keys = list(context.partition_keys)
    probed = probe_rows(store, keys)
    streams = main_video_streams(store, keys)
    folder = store.data_dir / "proxies"
    made = {"proxies": 0, "bytes": 0}

    def work(checksum: str, path: str) -> dict:
        target = proxy_path(folder, checksum)
        reason = proxy_reason(probed[checksum], streams.get(checksum))
        if reason is None:
            target.unlink(missing_ok=True)  # re-probed as playable: no stale proxy
            return {"proxy": "not needed"}
        result = make_proxy(path, target, rotation=probed[checksum]["rotation"] or 0)
        made["proxies"] += 1
        made["bytes"] += result.bytes
        return {
            "proxy": str(result.path),
            "why": reason,
            "bytes": result.bytes,
            "size": f"{result.width}x{result.height}",
            "encode_seconds": round(result.seconds, 2),
        }

    def forget(checksum: str) -> None:  # the content is bad: no proxy of it
        proxy_path(folder, checksum).unlink(missing_ok=True)

    todo = [k for k in keys if k in probed]
    outcome = run_per_partition(context, store, "proxies", todo, work, on_failure=forget)
    not_upstream(outcome, keys, set(probed), "probe")
    yield from per_file_results(context, outcome, {**outcome.metadata(), **made})
