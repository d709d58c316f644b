"""What Dagster records for each file of a run, so its partition view tells the truth.

A run covers a range of partitions (files), and each asset catches one file's failure so the
others go on. Returning one result for the range would mark every file materialized, a corrupt
one included. Instead: when every file succeeded, one `MaterializeResult` (Dagster writes one
materialization per partition, each with that file's metadata); when some failed, one
`AssetMaterialization` per file that succeeded and then a `Failure` whose metadata lists the
files that did not and why. Dagster then shows those partitions FAILED (planned in a failed run,
never materialized) and its own "backfill failed and missing" re-runs exactly them; steps after
this one wait for the next run (`dam ingest`, the sensor and the nightly run ask for it).

An asset whose model is not installed materializes nothing and fails nothing: its partitions
stay missing ("not yet"), one line says what to install, and the skip is recorded so `dam
ingest`, the status page and the planner of later runs know why.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
)

from ...models.base import Model, ModelUnavailable
from ...storage import Store
from ...storage.paths import safe_text
from .batch import BatchOutcome

M = TypeVar("M", bound=Model)
SHOWN = 50  # failed files listed in the run's failure metadata
DATA_VERSION_TAG = "dagster/data_version"


def per_file_results(
    context: AssetExecutionContext,
    outcome: BatchOutcome,
    metadata: dict,
    data_version: str | None = None,
) -> Iterator[AssetMaterialization | MaterializeResult]:
    """The events for the run's partitions: materialized where the file succeeded, failed
    (with its reason) where it did not. Partitions the asset had nothing to do for (no audio,
    not a video) count as succeeded; call `outcome.fail` for any the asset could not do.
    `data_version` names the settings the run used (versions.py)."""
    keys = list(context.partition_keys)
    failed = [k for k in keys if k in outcome.failed]
    if not failed:
        for key, meta in outcome.meta.items():
            context.add_asset_metadata(meta, partition_key=key)
        version = DataVersion(data_version) if data_version else None
        yield MaterializeResult(metadata=metadata, data_version=version)
        return
    # what Dagster puts on the materializations it writes itself (the nightly run and the UI's
    # staleness read them)
    tags = {"dagster/code_version": context.assets_def.code_versions_by_key[context.asset_key]}
    if data_version:
        tags.update(
            {DATA_VERSION_TAG: data_version, f"{DATA_VERSION_TAG}_is_user_provided": "true"}
        )
    for key in keys:
        if key not in outcome.failed:
            yield AssetMaterialization(
                asset_key=context.asset_key,
                partition=key,
                metadata=outcome.meta.get(key, {}),
                tags=tags,
            )
    stage = context.asset_key.to_user_string()
    rows = ["| file | why |", "|---|---|"] + [
        f"| `{k[:16]}…` | {safe_text(outcome.failed[k]).replace('|', '/')} |"
        for k in failed[:SHOWN]
    ]
    if len(failed) > SHOWN:
        rows.append(f"| … | {len(failed) - SHOWN} more: `dam sql` on ingest_errors |")
    first = safe_text(outcome.failed[failed[0]])
    raise Failure(
        description=f"{stage}: {len(failed)} of {len(keys)} file(s) failed (e.g. {first}); the"
        f" other {len(keys) - len(failed)} are materialized. Steps after {stage} run for them"
        " in the next run; the failed files are listed in this step's metadata and in"
        " ingest_errors.",
        metadata={
            **metadata,
            "failed_files": MetadataValue.md("\n".join(rows)),
            "failed_partitions": MetadataValue.json(failed[:1000]),
        },
        allow_retries=False,  # a retry would redo the good files too
    )


def load_or_skip(context: AssetExecutionContext, store: Store, model: M) -> M | None:
    """The model, loaded once for the run; or None when it is not installed (not the files'
    fault): one line says what to install, the skip is recorded, and the asset does nothing,
    so its partitions stay missing."""
    stage = context.asset_key.to_user_string()
    try:
        model.load()
    except ModelUnavailable as exc:
        context.log.warning(f"{stage} skipped, {len(context.partition_keys)} file(s) wait: {exc}")
        store.record_skip(stage, str(getattr(model.settings, "model", model.id)), str(exc))
        return None
    store.clear_skip(stage)
    return model


def not_upstream(outcome: BatchOutcome, keys: list[str], have: set[str], upstream: str) -> None:
    """Files of the run the asset cannot work on because `upstream` has no rows for them yet
    (it failed there, or has not run): not materialized, and not recorded as this stage's
    error (the upstream one says why)."""
    for key in keys:
        if key not in have:
            outcome.fail(
                key, f"{upstream} has no rows for this file yet (see its {upstream} error)"
            )
