"""A Dagster instance in which N files are materialized for every per-file asset, built fast.

Real runs write one event at a time: on SQLite about 16 ms each (each `store_event` opens the
run's shard and the index shard), and a 50-file run of the seven media assets leaves about 800
index rows (a planned and a materialization event per asset and partition, check planned and
evaluation events, run status events). 100,000 files that way take hours; the public batch
write (`store_event_batch`) is a loop of `store_event` on SQLite. So the instance is built from
what real runs wrote:

1. Real media (small generated files: videos, audio, stills) is indexed by real runs
   (`cli.runs.index_partitions`, the real assets, the tests' tiny CLIP model and face pack)
   into a scratch instance: a batch of `BATCH` good files (one run), and one whose first file
   is corrupt (a run that fails `probe` for it, then a run of the other assets for the rest).
   These runs are the templates; they are cached on disk.
2. The benchmark's instance gets its partitions through the public API
   (`add_dynamic_partitions`), each batch of `BATCH` partitions a copy of a template's runs:
   the run records and snapshots through the run storage's public methods, and every row the
   runs wrote to the index shard (`event_logs`, `asset_event_tags`,
   `asset_check_executions`) copied with plain SQL in big transactions, with the run id,
   partition keys, storage ids and times put in. One batch in `FAIL_EVERY` copies the failing
   template (its corrupt file gets the `ingest_errors` row the real one got).
3. The last batch is replayed event by event through `instance.handle_new_event`, the path a
   real run takes: that brings `asset_keys` (last materialization, run) up to date through
   Dagster's own code. Dagster's partition status cache is left to Dagster: its first status
   query builds it from the copied event log.
4. What Dagster then says is checked through its public API (`get_status_by_partition`).

The per-run event shards (step logs, read by a run's page in the UI) are not copied: none of
the measured queries reads them. No private Dagster import: the index shard's tables are
written as the template's rows show them. Not a test module: pytest collects nothing here.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dam_assets_tests.benchmarks.common import log

BATCH = 50  # files per run, as FILES_PER_RUN
REAL = 2 * BATCH  # real media files: the two template batches
FAIL_EVERY = 20  # one batch in 20 holds a corrupt file
SPREAD_DAYS = 30.0  # the copied runs are spread over the month before the build
BATCHES_PER_TRANSACTION = 100
YAML = "telemetry:\n  enabled: false\n"


def index_db(home: Path) -> Path:
    """The SQLite instance's index shard (cross-run asset events)."""
    return home / "history" / "runs" / "index.db"


# -- real media and real runs (the templates) ---------------------------------------------------
def make_real_media(folder: Path, count: int, first: int = 0) -> list[Path]:
    """Small distinct files of the kinds a library holds: 8 videos in 10, an audio file, a
    still."""
    from dam_assets.demo import samples

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(first, first + count):
        if i % 10 == 8:
            path = samples.make_audio(folder / f"tone_{i:04d}.m4a", seconds=1.0 + 0.02 * i)
        elif i % 10 == 9:
            path = samples.make_still(folder / f"photo_{i:04d}.jpg", make=f"BenchCam {i}")
        else:
            path = samples.make_video(
                folder / f"clip_{i:04d}.mp4",
                seconds=1,
                size=(160, 120),
                metadata={"title": f"dam scale {i}"},
            )
        paths.append(samples.age(path))
    return paths


@dataclass
class Template:
    """A batch of `BATCH` partitions (in partition order) and the real runs that indexed it."""

    keys: list[str]
    run_ids: list[str]
    errors: list[dict] = field(default_factory=list)  # ingest_errors rows of its files


def capture_templates(home: Path, data: Path, media: Path) -> list[Template]:
    """Index two batches of real media through real runs; returns [clean, failing]."""
    from dagster import DagsterInstance

    from dam_assets.cli.runs import index_partitions
    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
    from dam_assets.demo import samples
    from dam_assets.library.discovery import scan
    from dam_assets.storage import Store

    store = Store(data)
    templates = []
    with DagsterInstance.from_config(str(home)) as instance:
        for n, (name, corrupt) in enumerate((("clean", False), ("failing", True))):
            batch = media / name
            make_real_media(batch, BATCH - corrupt, first=n * BATCH + corrupt)
            bad = samples.age(samples.make_corrupt(batch / "clip_bad.mp4")) if corrupt else None
            report = scan([batch], store, settle_seconds=0)
            keys = list(report.checksums)
            if bad is not None:  # the corrupt file first: the other files are one range
                bad_key = report.by_path[str(bad)]
                keys = [bad_key] + [k for k in keys if k != bad_key]
            assert len(set(keys)) == BATCH, f"{len(set(keys))} distinct contents, not {BATCH}"
            before = {r.run_id for r in instance.get_runs()}
            log(f"real runs: {name} batch of {BATCH} files")
            outcome = index_partitions(keys, store, batch_size=BATCH, instance=instance, say=log)
            assert len(outcome.failed_runs) == corrupt, outcome.failed_runs
            runs = [r.run_id for r in reversed(instance.get_runs()) if r.run_id not in before]
            errors = store.sql(
                "SELECT stage, checksum, path, error_type, message FROM ingest_errors"
                " WHERE list_contains($1, checksum)",
                [keys],
            ).to_pylist()
            order = list(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
            templates.append(Template(order[-BATCH:], runs, errors))
    clean, failing = templates
    assert len(clean.run_ids) == 1 and len(failing.run_ids) == 2, templates
    assert len(failing.errors) == 1, failing.errors
    return templates


# -- templated rows -----------------------------------------------------------------------------
_STAMP = re.compile(r'"timestamp": ([0-9.]+)')


def _shift_text(text: str, delta: float) -> str:
    return _STAMP.sub(lambda m: f'"timestamp": {float(m.group(1)) + delta!r}', text)


def _shift_time(value: str | None, delta: float) -> str | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value) + timedelta(seconds=delta)
    return when.isoformat(sep=" ")


@dataclass
class RunCopy:
    """What one template run wrote to the index shard, ready to be copied."""

    run_id: str
    created: datetime
    events: list[dict]  # event_logs rows, in id order
    tags: list[dict]  # asset_event_tags rows
    checks: list[dict]  # asset_check_executions rows


def read_run(index: sqlite3.Connection, run_id: str, created: datetime) -> RunCopy:
    index.row_factory = sqlite3.Row
    events = [
        dict(r)
        for r in index.execute("SELECT * FROM event_logs WHERE run_id = ? ORDER BY id", [run_id])
    ]
    ids = [e["id"] for e in events]
    marks = ",".join("?" * len(ids))
    tags = [
        dict(r)
        for r in index.execute(
            f"SELECT * FROM asset_event_tags WHERE event_id IN ({marks}) ORDER BY id", ids
        )
    ]
    checks = [
        dict(r)
        for r in index.execute(
            "SELECT * FROM asset_check_executions WHERE run_id = ? ORDER BY id", [run_id]
        )
    ]
    return RunCopy(run_id, created, events, tags, checks)


class Renamer:
    """Puts a batch's keys and run ids in place of the template's in serialized text."""

    def __init__(self, keys: Sequence[str], runs: Sequence[str]):
        self.template = {k: i for i, k in enumerate(keys)}
        self.template.update({r: i for i, r in enumerate(runs)})
        self.pattern = re.compile("|".join(re.escape(t) for t in [*keys, *runs]))
        self.keys, self.runs = list(keys), list(runs)

    def one(self, row: dict, keys: Sequence[str], runs: Sequence[str]) -> str:
        """An event row's text: a partition's event names its key only (and its run)."""
        if not row["partition"]:
            return self(row["event"], keys, runs)
        text = row["event"].replace(row["run_id"], runs[self.template[row["run_id"]]])
        return text.replace(row["partition"], keys[self.template[row["partition"]]])

    def __call__(self, text: str, keys: Sequence[str], runs: Sequence[str]) -> str:
        mapping = dict(zip(self.keys, keys, strict=True)) | dict(zip(self.runs, runs, strict=True))
        return self.pattern.sub(lambda m: mapping[m.group()], text)


def _columns(index: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in index.execute(f"PRAGMA table_info({table})")]


# -- the whole build ----------------------------------------------------------------------------
@dataclass
class Built:
    keys: list[str]  # every partition, in order
    failed: list[str]  # the corrupt file of each failing batch
    runs: int
    events: int


def _batches(templates: Sequence[Template], tiny: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(template index, keys) of every batch: the real ones first, then the tiny files'."""
    batches = [(0, templates[0].keys), (1, templates[1].keys)]
    for b, start in enumerate(range(0, len(tiny), BATCH)):
        batches.append(
            (1 if b % FAIL_EVERY == FAIL_EVERY - 1 else 0, list(tiny[start : start + BATCH]))
        )
    return batches


def build(
    scratch_home: Path,
    home: Path,
    store,
    templates: Sequence[Template],
    tiny_keys: Sequence[str],
    tiny_paths: dict[str, str],
) -> Built:
    """The benchmark's instance at `home`: every partition, each batch's copy of its
    template's runs, the corrupt files' `ingest_errors`, the last batch replayed."""
    from dagster import DagsterInstance, deserialize_value, serialize_value

    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME

    batches = _batches(templates, tiny_keys)
    keys = [k for _, batch in batches for k in batch]
    assert len(set(keys)) == len(keys), "partition keys repeat"
    with (
        DagsterInstance.from_config(str(scratch_home)) as scratch,
        DagsterInstance.from_config(str(home)) as instance,
    ):
        instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, keys)
        log(f"{len(keys):,} partitions added")
        runs_of: list[list[RunCopy]] = []
        records = {}
        with sqlite3.connect(index_db(scratch_home)) as source:
            for t in templates:
                copies = []
                for run_id in t.run_ids:
                    record = scratch.get_run_record_by_id(run_id)
                    records[run_id] = record.dagster_run
                    _copy_snapshots(scratch, instance, record.dagster_run)
                    copies.append(read_run(source, run_id, record.create_timestamp))
                runs_of.append(copies)
        renamers = [Renamer(t.keys, t.run_ids) for t in templates]
        now = datetime.now(UTC).timestamp()
        first = min(c.created.timestamp() for copies in runs_of for c in copies)
        spacing = SPREAD_DAYS * 86400 / len(batches)
        failed: list[str] = []
        runs = events = 0
        index = sqlite3.connect(index_db(home), timeout=60)
        try:
            columns = {
                t: _columns(index, t)
                for t in ("event_logs", "asset_event_tags", "asset_check_executions")
            }
            next_id = (index.execute("SELECT max(id) FROM event_logs").fetchone()[0] or 0) + 1
            pending: list[tuple[str, list]] = []
            for b, (which, batch) in enumerate(batches[:-1]):
                delta = now - SPREAD_DAYS * 86400 + b * spacing - first
                new_runs = [str(uuid.uuid4()) for _ in templates[which].run_ids]
                rename = renamers[which]
                for copy, run_id in zip(runs_of[which], new_runs, strict=True):
                    run = deserialize_value(
                        rename(serialize_value(records[copy.run_id]), batch, new_runs)
                    )
                    created = copy.created + timedelta(seconds=delta)
                    instance.run_storage.add_historical_run(run, created)
                    ids = {}
                    for e in copy.events:
                        row = dict(e)
                        ids[e["id"]] = row["id"] = next_id
                        next_id += 1
                        row["run_id"] = run_id
                        row["event"] = _shift_text(rename.one(e, batch, new_runs), delta)
                        row["timestamp"] = _shift_time(e["timestamp"], delta)
                        if e["partition"]:
                            row["partition"] = batch[rename.template[e["partition"]]]
                        pending.append(("event_logs", row))
                    events += len(copy.events)
                    for t in copy.tags:
                        row = dict(t, id=None, event_id=ids[t["event_id"]])
                        row["event_timestamp"] = _shift_time(t["event_timestamp"], delta)
                        pending.append(("asset_event_tags", row))
                    for c in copy.checks:
                        row = dict(c, id=None, run_id=run_id)
                        if c["partition"]:
                            row["partition"] = batch[rename.template[c["partition"]]]
                        if c["evaluation_event"]:
                            row["evaluation_event"] = _shift_text(
                                rename(c["evaluation_event"], batch, new_runs), delta
                            )
                        for column in ("evaluation_event_timestamp", "create_timestamp"):
                            row[column] = _shift_time(c[column], delta)
                        for column in (
                            "evaluation_event_storage_id",
                            "materialization_event_storage_id",
                        ):
                            if c[column] is not None:
                                row[column] = ids.get(c[column], c[column])
                        pending.append(("asset_check_executions", row))
                runs += len(new_runs)
                if which == 1:
                    failed.append(batch[0])
                    if b > 1:  # the real failing batch has its real row
                        _copy_errors(store, templates[1], batch, tiny_paths)
                if (b + 1) % BATCHES_PER_TRANSACTION == 0 or b == len(batches) - 2:
                    _insert(index, columns, pending)
                    pending = []
                    log(f"  {b + 1:,}/{len(batches):,} batches, {runs:,} runs, {events:,} events")
        finally:
            index.close()
        which, batch = batches[-1]
        log("last batch through handle_new_event (Dagster's own write path)")
        events += _replay(scratch, instance, records, templates[which], renamers[which], batch)
        runs += len(templates[which].run_ids)
        if which == 1:
            failed.append(batch[0])
            _copy_errors(store, templates[1], batch, tiny_paths)
    return Built(keys, failed, runs, events)


def _insert(index: sqlite3.Connection, columns: dict[str, list[str]], pending: list) -> None:
    with index:
        for table in columns:
            rows = [row for name, row in pending if name == table]
            if not rows:
                continue
            names = [c for c in columns[table] if c in rows[0]]
            quoted = ", ".join(f'"{c}"' for c in names)
            marks = ", ".join("?" * len(names))
            index.executemany(
                f"INSERT INTO {table} ({quoted}) VALUES ({marks})",
                ([row[c] for c in names] for row in rows),
            )


def _copy_snapshots(scratch, instance, run) -> None:
    storage = instance.run_storage
    if not storage.has_job_snapshot(run.job_snapshot_id):
        storage.add_job_snapshot(scratch.get_job_snapshot(run.job_snapshot_id))
    plan = run.execution_plan_snapshot_id
    if plan and not storage.has_execution_plan_snapshot(plan):
        storage.add_execution_plan_snapshot(scratch.get_execution_plan_snapshot(plan))


def _replay(scratch, instance, records, template: Template, rename: Renamer, batch) -> int:
    """The template's runs for `batch`, every event through the instance's own write path."""
    from dagster import DagsterRunStatus, EventLogEntry, deserialize_value, serialize_value

    new_runs = [str(uuid.uuid4()) for _ in template.run_ids]
    count = 0
    for old in template.run_ids:
        run = deserialize_value(rename(serialize_value(records[old]), batch, new_runs))
        instance.add_run(run.with_status(DagsterRunStatus.NOT_STARTED))
        for entry in scratch.all_logs(old):
            text = rename(serialize_value(entry), batch, new_runs)
            instance.handle_new_event(deserialize_value(text, EventLogEntry))
            count += 1
    return count


def _copy_errors(store, template: Template, batch: Sequence[str], paths: dict[str, str]) -> None:
    position = {k: i for i, k in enumerate(template.keys)}
    for row in template.errors:
        key = batch[position[row["checksum"]]]
        store.record_stage_error(
            row["stage"], key, paths.get(key), row["error_type"], row["message"]
        )


def verify(instance, built: Built) -> dict[str, dict[str, int]]:
    """Dagster's own view: per asset, materialized and failed partitions."""
    from dam_assets.defs.common.partitions import media_partitions
    from dam_assets.defs.indexing.jobs import MEDIA_ASSETS

    seen = {}
    for assets_def in MEDIA_ASSETS:
        status = instance.get_status_by_partition(assets_def.key, built.keys, media_partitions)
        counts: dict[str, int] = {}
        for value in (status or {}).values():
            name = value.value if value is not None else "MISSING"
            counts[name] = counts.get(name, 0) + 1
        seen[assets_def.key.to_user_string()] = counts
    return seen


def fingerprint(*parts: object) -> str:
    return hashlib.blake2s(json.dumps(parts, default=str).encode(), digest_size=6).hexdigest()


def tiny_models(folder: Path) -> dict[str, str]:
    """The tiny CLIP model and face pack the tests use (no weights can be downloaded here), as
    the environment that selects them. Written once at a stable path: they are part of the
    assets' code versions."""
    from dam_assets.demo.tiny_clip import write_tiny_model
    from dam_assets.demo.tiny_face_pack import write_tiny_face_pack

    manifest = folder / "models.json"
    if not manifest.exists():
        config, weights = write_tiny_model(folder / "clip")
        pack = write_tiny_face_pack(folder / "faces")
        env = {
            "DAM_CLIP_MODEL": str(config),
            "DAM_CLIP_PRETRAINED": str(weights),
            "DAM_FACE_MODEL": str(pack),
        }
        manifest.write_text(json.dumps(env))
    return json.loads(manifest.read_text())


def iter_chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
