"""The one partitioning of every per-file asset: a file's BLAKE3 checksum."""

from dagster import DynamicPartitionsDefinition

MEDIA_PARTITIONS_NAME = "media"

media_partitions = DynamicPartitionsDefinition(name=MEDIA_PARTITIONS_NAME)
