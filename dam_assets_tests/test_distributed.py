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

from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.defs.common.ranges import range_tags
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.library.search import search_transcripts

from .conftest import copy_settled


def index_media_celery():
    """Module-level handle for `reconstructable()`: the run process rebuilds the job from the
    code location, as the webserver's runs do."""
    from dam_assets.definitions import defs

    return defs.resolve_job_def("index_media_celery")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKERS = 2


@pytest.fixture
def celery_worker(tmp_path, data_dir, monkeypatch):
    """Two worker processes sharing the data folder, each told it is a worker machine
    (DAM_ROLE=worker): they must never open the host's SQLite files."""
    redis = shutil.which("redis-server")
    if not redis:
        pytest.fail("redis-server is not installed: apt-get install redis-server")
    port = _port()
    broker = {"broker": f"redis://127.0.0.1:{port}/0", "backend": f"redis://127.0.0.1:{port}/1"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    DagsterInstance.get().dispose()  # create its storage once, before two workers open it
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
        "DAM_ROLE": "worker",
    }
    log = open(tmp_path / "celery.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=log,
    )
    workers = [
        subprocess.Popen(
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
                "--prefetch-multiplier",
                "1",
                "-n",
                f"worker{i}@%h",
            ],
            env=env,
            stdout=log,
            stderr=log,
            cwd=str(tmp_path),
            start_new_session=True,
        )
        for i in range(WORKERS)
    ]
    deadline = time.monotonic() + 90
    while (tmp_path / "celery.log").read_text().count("ready.") < WORKERS:
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            raise RuntimeError((tmp_path / "celery.log").read_text()[-3000:])
        time.sleep(0.5)
    yield broker
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    server.terminate()
    for worker in workers:
        worker.wait(30)
    server.wait(30)
    log.close()


def test_index_media_on_two_celery_workers(celery_worker, store, library, tmp_path):
    """The steps run on two worker processes sharing DAM_DATA_DIR; they write only Parquet,
    LanceDB and files (DAM_ROLE=worker refuses the host's SQLite files, so any step that
    opened one would fail). The host's text index and people then come from the lake."""
    from dam_assets.library.people import cluster_people

    from .test_faces import FACE_SHOTS

    root = tmp_path / "w"
    for name in ("h264", "still"):
        copy_settled(library[name], root / library[name].name)
    mf.age(mf.make_speech_video(root / "memo.mp4", "Send the footage to the editor tomorrow."))
    mf.age(mf.make_face_video(root / "faces.mp4", FACE_SHOTS["a.mp4"]))
    report = scan([root], store, settle_seconds=0)
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
        with execute_job(
            reconstructable(index_media_celery),
            instance=instance,
            run_config={"execution": {"config": celery_worker}},
            tags=range_tags(report.checksums),
        ) as result:
            failures = [
                e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
            ]
            assert result.success, failures
            pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
            assert os.getpid() not in pids and len(pids) == WORKERS  # both workers ran steps
    assert store.sql("SELECT count(*) n FROM probe").to_pylist() == [{"n": 4}]
    assert store.sql("SELECT count(*) n FROM clip_frames").to_pylist()[0]["n"] > 0
    hits = search_transcripts("footage tomorrow", data_dir=store.data_dir)
    assert [h["path"] for h in hits] == [str(root / "memo.mp4")]
    assert cluster_people(store).tracks > 0  # on the host: people.sqlite is the host's
