"""The capture-sessions job (the sensor requests it once rig segments change)."""

from dagster import define_asset_job

from .capture import capture_sessions

capture_sessions_job = define_asset_job(
    "sync_capture_sessions",
    selection=[capture_sessions],
    description="Group rig segments into sessions and sync them (after new rig files).",
)
