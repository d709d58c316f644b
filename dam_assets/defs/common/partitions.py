"""The one partitioning of every per-file asset: a file's BLAKE3 checksum."""

from dagster import BackfillPolicy, DynamicPartitionsDefinition, asset

MEDIA_PARTITIONS_NAME = "media"

media_partitions = DynamicPartitionsDefinition(name=MEDIA_PARTITIONS_NAME)

# Files per run wherever runs are planned (backfills, nightly, `dam ingest`, sensor follow-ups):
# one run start-up and one model load are shared by this many files.
FILES_PER_RUN = 50


def per_file_asset(**kwargs):
    """`@asset` of one partition per file: the media partitions, FILES_PER_RUN files per
    backfill run, and outputs given per file (results.py), so no single output is required."""
    return asset(
        partitions_def=media_partitions,
        backfill_policy=BackfillPolicy.multi_run(FILES_PER_RUN),
        output_required=False,
        **kwargs,
    )
