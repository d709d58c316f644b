"""Jobs: indexing new media (what the sensor and `dam ingest` launch), large-file hashing and
lake maintenance."""

from dagster import AssetSelection, Config, OpExecutionContext, define_asset_job, job, op

from ...library.discovery import read_deferred
from ...storage import TABLES
from ...storage.paths import safe_text
from ..media.probe import probe
from ..media.scenes import scenes
from ..media.thumbnails import thumbnails
from ..media.transcripts import transcripts
from ..people.faces import faces
from ..resources import DamStorage
from ..rigs.capture import capture_segments
from ..search.clip_embeddings import clip_embeddings

# Every asset partitioned by file checksum, upstream first (the planner reads this order).
MEDIA_ASSETS = [probe, thumbnails, scenes, transcripts, clip_embeddings, faces, capture_segments]

index_media_job = define_asset_job(
    "index_media",
    selection=AssetSelection.assets(*MEDIA_ASSETS),
    description="Index a batch of files (a range of `media` partitions) through every per-file"
    " asset. Launched by the storage sensor and by `dam ingest`.",
)


@op(description="Merge per-partition Parquet files into per-prefix segments; rebuild catalog.")
def compact_lake(context: OpExecutionContext, storage: DamStorage) -> dict:
    store = storage.store()
    totals = {}
    for name in TABLES:
        stats = store.lake.compact(name)
        if stats["units_merged"]:
            context.log.info(f"{name}: merged {stats['units_merged']} files")
        totals[name] = stats["units_merged"]
    store.export_registry()
    store.refresh_catalog(force=True)
    return totals


@op(
    description="Read the code versions of materializations the nightly schedule has not read"
    " yet (no tick limit here: a first read of a large instance takes minutes)."
)
def read_code_versions(context: OpExecutionContext, storage: DamStorage) -> int:
    from .status import read_versions  # status.py imports this module

    store = storage.store()
    for assets_def in MEDIA_ASSETS:
        read_versions(context.instance, store, assets_def)
    cursors = {
        a.key.to_user_string(): store.partition_versions.cursor(a.key.to_user_string())
        for a in MEDIA_ASSETS
    }
    context.log.info(f"code versions read up to {cursors}")
    return len(MEDIA_ASSETS)


@job(
    description="Compact the Parquet lake (the nightly schedule; also `dam compact`), and read"
    " the code versions the nightly schedule has not read yet."
)
def maintain_lake():
    compact_lake()
    read_code_versions()


class DeferredFile(Config):
    path: str
    root: str
    size: int
    mtime_ns: int
    inode: int


class HashFilesConfig(Config):
    files: list[DeferredFile]


@op(description="Checksum files the storage sensor found too large to read within a tick.")
def hash_files(context: OpExecutionContext, config: HashFilesConfig, storage: DamStorage) -> int:
    report = read_deferred([f.model_dump() for f in config.files], storage.store())
    for path, error_type, message in report.errors:
        context.log.warning(f"{safe_text(path)}: {error_type}: {message}")
    context.log.info(
        f"hashed {report.hashed} file(s), {report.hashed_bytes / 2**30:.1f} GiB;"
        f" {len(report.waiting)} changed since the sensor saw them (it looks again)"
    )
    return report.hashed


@job(description="Checksum large files for the storage sensor (its next tick indexes them).")
def hash_large_files():
    hash_files()
