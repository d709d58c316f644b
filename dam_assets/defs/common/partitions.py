"""The one partitioning of every per-file asset: a file's BLAKE3 checksum."""

from dagster import DynamicPartitionsDefinition

MEDIA_PARTITIONS_NAME = "media"

media_partitions = DynamicPartitionsDefinition(name=MEDIA_PARTITIONS_NAME)

# Files per run wherever runs are planned (backfills, nightly, `dam ingest`, sensor follow-ups):
# one run start-up and one model load are shared by this many files.
FILES_PER_RUN = 50
