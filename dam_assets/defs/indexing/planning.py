"""Which assets each file still lacks, and the runs that do exactly that.

`dam ingest`, the storage sensor's follow-ups and the nightly schedule all ask the same
question: for each file (partition), which per-file assets can and should run now? They then
launch, per contiguous stretch of the partition order, a run of only those assets: an
unchanged library costs status queries and no run at all, and a file that lacks only `faces`
never has its transcript redone.

An asset of a file is to do when Dagster has not materialized it (new, failed, killed), or it
was made by another code version (`outdated`), or an asset it depends on is to do; it is left
alone when it failed on the file's content (recorded in `ingest_errors`; retried once the file
changes), when its problem was getting at the file and `retry_access` is off, when its model is
not installed (`unavailable`), or when an asset it depends on is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dagster import AssetKey, DagsterInstance

from ...storage import Store
from ..common.batch import TRANSIENT
from ..common.ranges import contiguous_batches
from .jobs import MEDIA_ASSETS
from .status import partition_states

ORDER = [a.key.to_user_string() for a in MEDIA_ASSETS]  # job order: upstream first
UPSTREAM = {
    a.key.to_user_string(): {
        k.to_user_string() for k in a.dependency_keys if k.to_user_string() in ORDER
    }
    for a in MEDIA_ASSETS
}


@dataclass(frozen=True)
class PlannedRun:
    assets: tuple[str, ...]  # in job order
    keys: list[str]  # a contiguous stretch of the partition order

    @property
    def selection(self) -> list[AssetKey] | None:
        """The run's asset selection; None for every asset (the whole `index_media` job)."""
        return None if list(self.assets) == ORDER else [AssetKey(a) for a in self.assets]


def materialized(
    instance: DagsterInstance, store: Store, keys: Sequence[str], budget_s: float | None = None
) -> dict[str, set[str]]:
    """Per asset, which of `keys` Dagster shows materialized (status.partition_states: the
    same answer as its partition status cache, without reading the whole cache per asset)."""
    states = partition_states(instance, store, keys, budget_s)
    return {name: s.materialized for name, s in states.items()}


def in_lake(store: Store, keys: Sequence[str]) -> set[str]:
    """Which of `keys` have their probe row (every probed file has exactly one)."""
    return set(
        store.sql(
            "SELECT DISTINCT checksum FROM probe WHERE list_contains($1, checksum)",
            [list(keys) or [""]],
        )
        .column("checksum")
        .to_pylist()
    )


def errors_by_stage(store: Store, keys: Sequence[str]) -> dict[str, dict[str, str]]:
    """stage -> checksum -> error type of the files' recorded per-file errors."""
    rows = store.sql(
        "SELECT stage, checksum, error_type FROM ingest_errors WHERE stage <> 'discovery'"
        " AND checksum IS NOT NULL AND checksum IN (SELECT unnest($1))",  # a hash join
        [list(keys) or [""]],
    ).to_pylist()
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["stage"], {})[r["checksum"]] = r["error_type"]
    return out


def lacking(
    instance: DagsterInstance,
    keys: Sequence[str],
    store: Store,
    *,
    retry_access: bool,
    unavailable: Iterable[str] = (),
    outdated: dict[str, set[str]] | None = None,
    attempted: set[tuple[str, str]] = frozenset(),
    budget_s: float | None = None,
) -> dict[str, tuple[str, ...]]:
    """Per key, the assets to run for it now (in job order); keys with nothing to do are
    left out. `attempted` (asset, key) pairs are not tried again (one `dam ingest`)."""
    done = materialized(instance, store, keys, budget_s)
    # Dagster remembers materializations the data folder may no longer hold (`make
    # clean-data`, a new DAM_DATA_DIR, a restored backup): a file without its probe row is
    # indexed again, whatever the instance says.
    done["probe"] &= in_lake(store, keys)
    errors = errors_by_stage(store, keys)
    off = set(unavailable)
    outdated = outdated or {}
    plan: dict[str, tuple[str, ...]] = {}
    for key in keys:
        state: dict[str, str] = {}  # asset -> ok | todo | left
        for name in ORDER:
            ups = [state[u] for u in UPSTREAM[name]]
            error = errors.get(name, {}).get(key)
            if "left" in ups:
                state[name] = "left"
            elif key in done[name] and key not in outdated.get(name, ()) and "todo" not in ups:
                state[name] = "ok"
            elif (
                name in off
                or (name, key) in attempted
                or (error and not (retry_access and error in TRANSIENT))
            ) and key not in outdated.get(name, ()):
                state[name] = "left"
            else:
                state[name] = "todo"
        todo = tuple(n for n in ORDER if state[n] == "todo")
        if todo:
            plan[key] = todo
    return plan


def plan_runs(
    plan: dict[str, tuple[str, ...]], ordered_keys: Sequence[str], batch_size: int
) -> list[PlannedRun]:
    """One run per contiguous stretch of keys that lack the same assets, at most
    `batch_size` keys each."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, assets in plan.items():
        groups.setdefault(assets, []).append(key)
    runs = [
        PlannedRun(assets, batch)
        for assets, wanted in groups.items()
        for batch in contiguous_batches(wanted, ordered_keys, batch_size)
    ]
    position = {k: i for i, k in enumerate(ordered_keys)}
    return sorted(runs, key=lambda r: (ORDER.index(r.assets[0]), position.get(r.keys[0], 0)))


def unavailable(store: Store) -> dict[str, str]:
    """Assets skipped for a model that is still not installed: asset -> what to install.
    (An asset skipped before whose model is now in place is tried again.)"""
    from ...models.clip import ClipModel
    from ...models.faces import FaceModel
    from ...models.whisper import WhisperModel
    from ..resources import ClipConfig, FaceConfig, WhisperConfig

    models = {
        "transcripts": lambda: WhisperModel(WhisperConfig().settings(), store.models_dir),
        "clip_embeddings": lambda: ClipModel(ClipConfig().settings(), store.models_dir),
        "faces": lambda: FaceModel(FaceConfig().settings(), store.models_dir),
    }
    return {
        stage: skip["message"]
        for stage, skip in store.skips().items()
        if stage in models and not models[stage]().available()
    }
