"""Steps executed by Celery workers through a real Redis broker: the test starts redis-server
and a `dagster-celery` worker process on loopback, and `index_media_celery` materializes real
partitions through them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, execute_job, reconstructable

from dam_assets.discovery import scan
from dam_assets.distributed import index_media_celery
from dam_assets.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.runs import range_tags

from .conftest import copy_settled


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def celery_worker(tmp_path, data_dir, monkeypatch):
    redis = shutil.which("redis-server")
    if not redis:
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    port = _port()
    broker = {"broker": f"redis://127.0.0.1:{port}/0", "backend": f"redis://127.0.0.1:{port}/1"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = tmp_path / "celery.yaml"
    config.write_text(
        "execution:\n  config:\n" + "".join(f"    {k}: {v}\n" for k, v in broker.items())
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ["PATH"],
        "DAM_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
    }
    log = open(tmp_path / "celery.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=log,
    )
    worker = subprocess.Popen(
        [
            str(Path(bin_dir) / "dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(config),
            "--",
            "--concurrency",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=log,
        cwd=str(tmp_path),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "ready." not in (tmp_path / "celery.log").read_text():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError((tmp_path / "celery.log").read_text()[-3000:])
        time.sleep(0.5)
    yield broker
    os.killpg(worker.pid, signal.SIGTERM)
    server.terminate()
    worker.wait(30)
    server.wait(30)
    log.close()


def test_index_media_on_celery_workers(celery_worker, store, library, tmp_path):
    root = tmp_path / "w"
    for name in ("h264", "still"):
        copy_settled(library[name], root / library[name].name)
    report = scan([root], store, settle_seconds=0)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
        with execute_job(
            reconstructable(index_media_celery),
            instance=instance,
            run_config={"execution": {"config": celery_worker}},
            tags=range_tags(report.checksums),
        ) as result:
            assert result.success
            pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
            assert pids and os.getpid() not in pids  # the steps ran in the worker
    assert store.sql("SELECT count(*) n FROM probe").to_pylist() == [{"n": 2}]
    assert store.sql("SELECT count(*) n FROM clip_frames").to_pylist()[0]["n"] > 0
