"""The nightly whole-library check pass: runs check only their own partitions."""

from dagster import AssetSelection, define_asset_job

check_library = define_asset_job(
    "check_library",
    selection=AssetSelection.all_asset_checks(),
    description="Every asset check over the whole library (runs check only their partitions).",
)
