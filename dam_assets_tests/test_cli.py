"""End to end through the installed `dam` command: ingest -> status -> sql, as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import copy_settled

DAM = [sys.executable, "-m", "dam_assets.cli"]


def dam(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*DAM, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    return {**os.environ, "DAGSTER_HOME": str(home), "DAM_DATA_DIR": str(tmp_path / "data")}


def test_ingest_status_sql(tmp_path, library, bad_files, env, monkeypatch):
    media = tmp_path / "offload"
    for name, path in library.items():
        copy_settled(path, media / name / path.name)
    for path in bad_files.values():
        copy_settled(path, media / "bad" / path.name)
    copy_settled(library["h264"], media / "duplicate" / "same_content.mp4")

    run = dam("ingest", str(media), env=env)
    assert run.returncode == 2, run.stderr  # some files went to ingest_errors, the rest indexed
    # the three bad files have partitions (their content is known) but are not indexed: probe
    # failed on them, so Dagster shows them failed, not materialized
    assert "Indexed 6 new file(s) in" in run.stdout
    for name in ("empty.mp4", "notes.mov", "cut.mp4", "junk.mkv"):
        assert name in run.stdout

    status = dam("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    by_asset = {a["asset"]: a for a in report["assets"]}
    assert by_asset["probe"]["partitions"] == 9 and by_asset["probe"]["materialized"] == 6
    assert by_asset["probe"]["failed"] == 3 and by_asset["probe"]["file_errors"] == 3
    assert by_asset["thumbnails"]["materialized"] == 6
    assert report["files"]["files"] == 10 and report["discovery_errors"] == 1

    sql = dam(
        "sql",
        "SELECT p.media_kind, count(*) AS n FROM media_files f JOIN probe p"
        " USING (checksum) GROUP BY ALL ORDER BY ALL",
        "--json",
        env=env,
    )
    assert sql.returncode == 0, sql.stderr
    assert json.loads(sql.stdout) == [
        {"media_kind": "audio", "n": 1},
        {"media_kind": "image", "n": 1},
        {"media_kind": "video", "n": 5},  # the duplicate path joins the same probe row
    ]
    csv = dam("sql", "SELECT count(*) AS n FROM thumbnails WHERE kind = 'poster'", "--csv", env=env)
    assert csv.stdout.splitlines() == ["n", "10"]

    # Running it again indexes nothing new; the instance recorded real runs for the UI.
    again = dam("ingest", str(media), env=env)
    assert "Indexed 0 new file(s) in 0 run(s); 9 already indexed" in again.stdout
    from dagster import DagsterInstance

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        # one run of every asset, failed for the bad files; then the good files' other assets
        assert {r.job_name for r in runs} == {"index_media"}
        assert {r.tags["dam/source"] for r in runs} == {"dam ingest"}
        first = runs[-1]
        assert first.status.value == "FAILURE" and not first.asset_selection
        assert all(r.status.value == "SUCCESS" for r in runs[:-1])


def test_clean_library_exits_zero_and_usage_errors_exit_one(tmp_path, library, env):
    media = tmp_path / "clean"
    copy_settled(library["still"], media / "a.jpg")
    ok = dam("ingest", str(media), env=env)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert dam("ingest", str(tmp_path / "nope"), env=env).returncode == 1
    assert dam("frobnicate", env=env).returncode == 1
    bad_sql = dam("sql", "SELECT * FROM no_such_view", env=env)
    assert bad_sql.returncode == 1 and "no_such_view" in bad_sql.stderr


def test_code_location_loads_without_warnings(tmp_path):
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            str(root / "workspace.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    # The validate command warns about itself (superseded by `dg`); nothing else may warn.
    warnings = [
        line
        for line in result.stderr.splitlines()
        if "Warning" in line and "definitions_validate_command" not in line
    ]
    assert warnings == [], result.stderr


def test_clean_data_removes_only_what_the_pipeline_wrote(tmp_path, library, env):
    """`make clean-data` once deleted data/inbox (originals waiting to be indexed) and
    data/models (weights downloaded by hand). It removes exactly the pipeline's outputs."""
    data = Path(env["DAM_DATA_DIR"])
    media = tmp_path / "card"
    copy_settled(library["still"], media / "photo.jpg")
    assert dam("ingest", str(media), env=env).returncode == 0
    theirs = {
        data / "inbox" / "waiting.mp4": b"an original, waiting to be indexed",
        data / "models" / "open_clip" / "ViT-B-32-laion2b_s34b_b79k.safetensors": b"weights",
        data / "people.sqlite": b"names given by hand",
        data / "rigs" / "stage-a" / "camA" / "A001.mov": b"a rig root's footage",
    }
    for path, content in theirs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    ours = [data / n for n in ("lake", "catalog.duckdb", "registry.sqlite", "thumbnails")]
    assert all(p.exists() for p in ours)
    repo = Path(__file__).resolve().parents[1]
    venv = Path(sys.executable).parent.parent
    run = subprocess.run(
        ["make", "-s", "clean-data", f"VENV={venv}", f"DAM_DATA_DIR={data}"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert not any(p.exists() for p in ours)
    assert {p: p.read_bytes() for p in theirs} == theirs
    assert "kept" in run.stdout and "inbox" in run.stdout
    # The Dagster instance still remembers the file as materialized, but its rows are gone:
    # ingesting it again must index it again, not call it "already indexed".
    again = dam("ingest", str(media), env=env)
    assert again.returncode == 0 and "Indexed 1 new file(s) in 1 run(s)" in again.stdout
    rows = dam("sql", "SELECT count(*) AS n FROM probe", "--csv", env=env)
    assert rows.stdout.splitlines() == ["n", "1"], again.stdout + rows.stdout


def test_unreachable_postgres_instance_is_one_line(tmp_path, env):
    home = Path(env["DAGSTER_HOME"])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: postgresql://d:x@127.0.0.1:{port}/d\n"
    )
    for command in (["status"], ["ingest", str(tmp_path)]):
        run = dam(*command, env=env)
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and f"PostgreSQL server 127.0.0.1:{port} is unreachable" in lines[0]


def test_a_killed_dam_ingest_does_not_hold_its_run_forever(tmp_path, library, env):
    """`dam ingest` runs in process: SIGKILLed (or OOM-killed), its run stayed STARTED, holding
    a run slot and its pool for good. The next `dam ingest` (or sensor tick) marks it failed."""
    import signal
    import time

    from dagster import DagsterInstance, DagsterRunStatus

    media = tmp_path / "card"
    for name in ("h264", "vfr", "rotated", "audio"):
        copy_settled(library[name], media / library[name].name)
    home = Path(env["DAGSTER_HOME"])
    with DagsterInstance.from_config(str(home)):
        pass  # its tables exist before two processes open it
    child = subprocess.Popen([*DAM, "ingest", str(media)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    started = []
    while not started and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
        try:  # the child writes the same SQLite files: a look may find them locked
            with DagsterInstance.from_config(str(home)) as instance:
                runs = instance.get_runs()
        except Exception as exc:
            if "locked" in str(exc):
                continue
            raise
        started = [r for r in runs if r.status == DagsterRunStatus.STARTED]
    assert started, "no run started"
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(started[0].run_id).status == DagsterRunStatus.STARTED
    other = tmp_path / "other"
    copy_settled(library["still"], other / "photo.jpg")
    run = dam("ingest", str(other), env=env)
    assert "of a `dam` process that was killed is marked failed" in run.stderr
    with DagsterInstance.from_config(str(home)) as instance:
        killed = instance.get_run_by_id(started[0].run_id)
        assert killed.status == DagsterRunStatus.FAILURE
