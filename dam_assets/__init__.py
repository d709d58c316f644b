"""dam_assets: a media library indexer orchestrated by Dagster."""
