"""A code location for the daemon drill: one asset in the `transcription` pool that holds its
slot for as long as it is told, in the run worker's own process (so that process is the one
to kill). It stands in for a model-heavy step; what the drill tests is the instance."""

import os
import time
from pathlib import Path

from dagster import Config, Definitions, asset, define_asset_job, in_process_executor


class Hold(Config):
    seconds: float = 0.0
    pid_file: str = ""


@asset(pool="transcription")
def holds_pool(config: Hold) -> None:
    if config.pid_file:  # the step is running, so the slot is taken
        Path(config.pid_file).write_text(str(os.getpid()))
    time.sleep(config.seconds)


defs = Definitions(
    assets=[holds_pool],
    jobs=[define_asset_job("hold_pool", [holds_pool], executor_def=in_process_executor)],
)
