from dagster import ConfigurableResource
from pydantic import Field

from ...settings import data_dir
from ...storage import Store


class DamStorage(ConfigurableResource):
    """Where the pipeline writes: lake, catalog, registry, thumbnails (one `DAM_DATA_DIR`)."""

    data_dir: str | None = Field(
        default=None,
        description="Folder for everything derived. Empty: $DAM_DATA_DIR, else <project>/data.",
    )

    def store(self) -> Store:
        return Store(data_dir(self.data_dir))
