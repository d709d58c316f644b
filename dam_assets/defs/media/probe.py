from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import AssetExecutionContext, MetadataValue

from ...media.probe import probe_file
from ...storage.paths import display_path, safe_text
from ...storage.schemas import PROBE, STREAMS, rows_to_table
from ..common.batch import run_per_partition
from ..common.partitions import per_file_asset
from ..common.results import per_file_results
from ..resources import DamStorage


@per_file_asset(
    group_name="media",
    kinds={"pyav", "parquet"},
    code_version="probe-1",
    description="Technical metadata of every file (PyAV): container, streams, colour, HDR, VFR,"
    " rotation, audio layout, subtitles, camera tags. Tables `probe` and `streams`.",
)
def probe(context: AssetExecutionContext, storage: DamStorage) -> Iterator:
    store = storage.store()
    store.refresh_catalog()
    keys = list(context.partition_keys)
    preview: list[dict] = []

    def work(checksum: str, path: str) -> dict:
        result = probe_file(path)
        row = {
            "checksum": checksum,
            "path": display_path(path),
            **result.file,
            "probed_at": datetime.now(UTC),
        }
        streams = [{"checksum": checksum, **s} for s in result.streams]
        store.lake.write_unit("streams", checksum, rows_to_table(STREAMS, streams))
        store.lake.write_unit("probe", checksum, rows_to_table(PROBE, [row]))
        if len(preview) < 10:
            preview.append(row)
        return _summary(row)

    def forget(checksum: str) -> None:  # a file that fails leaves no rows behind
        store.lake.clear_unit("probe", checksum)
        store.lake.clear_unit("streams", checksum)

    outcome = run_per_partition(context, store, "probe", keys, work, on_failure=forget)
    metadata = outcome.metadata()
    if preview:
        metadata["preview"] = MetadataValue.md(_markdown(preview))
    yield from per_file_results(context, outcome, metadata)


def _summary(row: dict) -> dict:
    size = f"{row['display_width']}x{row['display_height']}" if row.get("display_width") else None
    values = {
        "kind": row["media_kind"],
        "duration_s": row["duration_s"],
        "container": row["container"],
        "video_codec": row["video_codec"],
        "resolution": size,
        "fps": row["fps_avg"],
        "vfr": row["is_vfr"],
        "hdr": row["hdr"],
        "audio_codec": row["audio_codec"],
        "path": row["path"],
    }
    return {k: v for k, v in values.items() if v is not None}


def _markdown(rows: list[dict]) -> str:
    cols = [
        "path",
        "media_kind",
        "duration_s",
        "video_codec",
        "display_width",
        "display_height",
        "fps_avg",
        "audio_codec",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            text = f"{v:.2f}" if isinstance(v, float) else str(v if v is not None else "")
            cells.append(safe_text(text).replace("|", "\\|"))  # names are not Markdown
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
