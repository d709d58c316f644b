from dagster import DefaultScheduleStatus, ScheduleDefinition

from .jobs import maintain_lake

# Compaction at 03:30 local time, after the day's ingest has settled. Views read units and
# segments alike, so compaction is about read speed only: skipping a night loses nothing.
nightly_compaction = ScheduleDefinition(
    name="nightly_compaction",
    job=maintain_lake,
    cron_schedule="30 3 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Merge small per-partition Parquet files so catalog queries stay fast.",
)
