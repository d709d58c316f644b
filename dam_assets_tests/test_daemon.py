"""The instance as the repo configures it (its own dagster.yaml, copied into a fresh
DAGSTER_HOME) under a real `dagster-daemon`: a run whose worker is killed with SIGKILL while it
holds a pool slot does not stall the pool; the next queued run of that pool completes.
And `dam` keeps its instance in DAGSTER_HOME whatever folder it is started from."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEADLINE_S = 300  # bounds the wait so a stall fails the test; not a measure of speed


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME holding the repo's dagster.yaml. Dagster processes start there (as `dam`
    and `make dev` start them), so its relative base_dir lands inside it."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(home)
    return home


def _launch(workspace: Path, run_id: str, config: dict) -> None:
    subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-w",
            str(workspace),
            "-j",
            "hold_pool",
            "--run-id",
            run_id,
            "--config-json",
            json.dumps({"ops": {"holds_pool": {"config": config}}}),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _wait(what: str, check, deadline: float, log: Path) -> None:
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"timed out waiting for {what}; the daemon said:\n{tail}")
        time.sleep(0.5)


@pytest.mark.slow
def test_killed_run_frees_its_pool_for_the_next_queued_run(home, tmp_path):
    instance = DagsterInstance.get()  # its storage exists before the daemon starts
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {REPO / 'dam_assets_tests' / 'daemon_location.py'}\n"
        "      location_name: drill\n"
    )
    log_path = tmp_path / "daemon.log"
    log = log_path.open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + DEADLINE_S
    try:
        pid_file = tmp_path / "worker.pid"
        killed, after = str(uuid.uuid4()), str(uuid.uuid4())
        _launch(workspace, killed, {"seconds": 3600, "pid_file": str(pid_file)})
        _wait("the first run to hold the pool", pid_file.exists, deadline, log_path)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # as the OOM killer would
        _launch(workspace, after, {"seconds": 0})

        _wait(
            "the queued run to finish",
            lambda: instance.get_run_by_id(after).is_finished,
            deadline,
            log_path,
        )
        assert instance.get_run_by_id(after).status == DagsterRunStatus.SUCCESS
        dead = instance.get_run_by_id(killed).status
        assert dead in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
    assert (home / "data" / "dagster_home" / "history" / "runs.db").is_file()


def test_dam_keeps_its_instance_in_dagster_home(tmp_path):
    """`cd /mnt/card && dam status` must not start a second instance on the card."""
    home = tmp_path / "home"
    card = tmp_path / "card"
    home.mkdir()
    card.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAM_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "dam_assets.cli", "status"],
        cwd=card,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (home / "data" / "dagster_home" / "history" / "runs.db").is_file()
    assert list(card.iterdir()) == []
