"""What Dagster, `dam status` and `dam ingest` say is true, file by file: a failed file shows
failed, a missing model is "not yet", and re-runs do only what is missing. Real runs on a real
(temporary) instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dagster import AssetKey, DagsterInstance

from dam_assets.definitions import defs
from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME, media_partitions
from dam_assets.defs.common.ranges import range_tags
from dam_assets.library.discovery import scan

from .conftest import TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS, TINY_FACE_PACK, copy_settled

DAM = [sys.executable, "-m", "dam_assets.cli"]


def _status(instance, asset: str, keys: list[str]) -> dict[str, str | None]:
    found = instance.get_status_by_partition(AssetKey(asset), keys, media_partitions) or {}
    return {k: getattr(found.get(k), "value", None) for k in keys}


def test_a_failed_file_shows_failed_and_the_others_materialized(
    instance, store, tmp_path, library, bad_files
):
    """One corrupt file in a batch: its `probe` partition is FAILED with the reason in the
    run's failure, the others are MATERIALIZED (it used to be green with the rest)."""
    root = tmp_path / "w"
    for name in ("h264", "audio"):
        copy_settled(library[name], root / library[name].name)
    copy_settled(bad_files["corrupt"], root / "junk.mkv")
    report = scan([root], store, settle_seconds=0)
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    bad = report.by_path[str(root / "junk.mkv")]
    good = [k for k in report.checksums if k != bad]
    result = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance, tags=range_tags(report.checksums), raise_on_error=False
    )
    assert not result.success  # some files failed: the run says so
    probe = _status(instance, "probe", report.checksums)
    assert probe[bad] == "FAILED" and all(probe[k] == "MATERIALIZED" for k in good)
    [failure] = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE" and e.step_key == "probe"
    ]
    data = failure.step_failure_data.user_failure_data
    assert "1 of 3 file(s) failed" in data.description
    assert bad in data.metadata["failed_partitions"].value
    assert "FFmpeg could not read this file" in data.metadata["failed_files"].value
    # the materialized partitions carry their own metadata
    [record] = instance.fetch_materializations(AssetKey("probe"), limit=10).records[:1]
    assert record.partition_key in good and "duration_s" in record.asset_materialization.metadata


def _env(tmp_path, **extra) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAM_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def _dam(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([*DAM, *args], capture_output=True, text=True, env=env, timeout=600)


def test_missing_models_are_not_yet_and_reruns_do_only_what_is_missing(tmp_path, library):
    """No CLIP weights and no face pack: `dam ingest` exits 0, says what to install, and
    leaves those assets missing; the next ingest launches no run at all; once the models are
    in place, one run fills in exactly those two assets."""
    media = tmp_path / "card"
    for name in ("h264", "still"):
        copy_settled(library[name], media / library[name].name)
    offline = _env(
        tmp_path,
        DAM_CLIP_MODEL="ViT-B-32",
        DAM_CLIP_PRETRAINED="laion2b_s34b_b79k",
        DAM_FACE_MODEL="buffalo_l",
        HF_HUB_OFFLINE="1",
    )
    first = _dam("ingest", str(media), env=offline)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "clip_embeddings: 2 file(s) wait for a model" in first.stdout
    assert "ViT-B-32-laion2b_s34b_b79k.safetensors" in first.stdout
    assert "faces: 2 file(s) wait for a model" in first.stdout and "non-commercial" in first.stdout
    assert "Indexed 2 new file(s)" in first.stdout

    again = _dam("ingest", str(media), env=offline)
    assert again.returncode == 0 and "in 0 run(s)" in again.stdout, again.stdout
    told = _dam("status", env=offline).stdout  # `dam status` says why they are missing too
    assert "clip_embeddings: 2 missing, waiting for a model: CLIP weights" in told, told
    assert "faces: 2 missing, waiting for a model" in told and "non-commercial" in told

    installed = _env(
        tmp_path,
        DAM_CLIP_MODEL=str(TINY_CLIP_CONFIG),
        DAM_CLIP_PRETRAINED=str(TINY_CLIP_WEIGHTS),
        DAM_FACE_MODEL=str(TINY_FACE_PACK),
    )
    filled = _dam("ingest", str(media), env=installed)
    assert filled.returncode == 0, filled.stderr + filled.stdout
    assert "in 1 run(s)" in filled.stdout
    status = json.loads(_dam("status", "--json", env=installed).stdout)
    assert all(a["materialized"] == 2 for a in status["assets"]), status
    assert status["waiting_for_model"] == {}, status
    with DagsterInstance.from_config(installed["DAGSTER_HOME"]) as instance:
        runs = instance.get_runs()
    selections = [sorted(k.to_user_string() for k in r.asset_selection or []) for r in runs]
    assert selections[0] == ["clip_embeddings", "faces"]  # the last run: only what was missing


STALE_QUERY = """
query Stale($keys: [AssetKeyInput!], $a: String, $b: String) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    a: staleStatus(partition: $a)
    b: staleStatus(partition: $b)
  }
}
"""


def test_staleness_follows_the_settings_a_run_used(tmp_path, library, monkeypatch):
    """A person re-runs `scenes` for one file with another threshold in the launchpad, and for
    the other with the configured one: the UI (GraphQL of a real webserver) shows the first
    file's CLIP frames stale and the other file's fresh. Then they change the configured
    threshold (DAM_SCENE_THRESHOLD): the nightly run re-makes scenes and what depends on it
    for every file."""
    from .webserver import free_port, graphql, wait_for_server, webserver

    media = tmp_path / "card"
    for name in ("h264", "rotated"):
        copy_settled(library[name], media / library[name].name)
    env = _env(tmp_path, DAM_FACE_MODEL="none")
    assert _dam("ingest", str(media), env=env).returncode == 0
    home = env["DAGSTER_HOME"]
    for name in ("DAGSTER_HOME", "DAM_DATA_DIR", "DAM_FACE_MODEL"):  # the runs below
        monkeypatch.setenv(name, env[name])
    with DagsterInstance.from_config(home) as instance:
        keys = list(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
        first, second = keys
        launchpad = {"resources": {"scene_detection": {"config": {"threshold": 12.0}}}}
        rerun = defs.resolve_job_def("index_media").execute_in_process(
            instance=instance,
            partition_key=first,
            asset_selection=[AssetKey("scenes")],
            run_config=launchpad,
        )
        assert rerun.success
        same = defs.resolve_job_def("index_media").execute_in_process(  # as the nightly would
            instance=instance, partition_key=second, asset_selection=[AssetKey("scenes")]
        )
        assert same.success
    port = free_port()
    with webserver(port, tmp_path / "webserver.log", env=env) as proc:
        wait_for_server(port, proc)
        nodes = graphql(
            port,
            STALE_QUERY,
            {
                "keys": [{"path": ["clip_embeddings"]}, {"path": ["scenes"]}],
                "a": first,
                "b": second,
            },
        )["assetNodes"]
    stale = {n["assetKey"]["path"][0]: (n["a"], n["b"]) for n in nodes}
    # made from the old scenes; the other file's scenes were re-made with the same settings
    assert stale["clip_embeddings"] == ("STALE", "FRESH")
    assert stale["scenes"] == ("FRESH", "FRESH")

    nightly = _nightly_selections({**env, "DAM_SCENE_THRESHOLD": "20"})
    assert nightly == [["clip_embeddings", "faces", "scenes"]], nightly  # both files, one run


def _nightly_selections(env: dict) -> list[list[str]]:
    """The nightly schedule's requests, evaluated in a fresh process with this environment
    (code versions are read when the code location loads)."""
    code = """
import json
from datetime import UTC, datetime
from dagster import DagsterInstance, build_schedule_context
from dam_assets.defs.resources import DamStorage
from dam_assets.defs.indexing.schedules import nightly
with DagsterInstance.get() as instance:
    ctx = build_schedule_context(instance=instance, scheduled_execution_time=datetime.now(UTC))
    out = nightly(ctx, storage=DamStorage())
    print(json.dumps([sorted(k.to_user_string() for k in (r.asset_selection or []))
                      for r in (out if isinstance(out, list) else [])]))
"""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])
