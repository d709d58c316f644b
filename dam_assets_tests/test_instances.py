"""The same end-to-end ingest through `dam` on both instance storages: embedded SQLite and
PostgreSQL (dagster-postgres) on a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from dagster import DagsterInstance

from .conftest import copy_settled
from .postgres import create_database, postgres_server


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def instance_home(request, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    if request.param == "postgres":
        url = create_database(request.getfixturevalue("pg_server"), f"dam_{uuid.uuid4().hex[:8]}")
        (home / "dagster.yaml").write_text(
            "storage:\n  postgres:\n    postgres_url: " + json.dumps(url) + "\n"
            "telemetry:\n  enabled: false\n"
        )
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return request.param, home


def test_ingest_end_to_end_on_each_storage(instance_home, tmp_path, library, monkeypatch):
    kind, home = instance_home
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAM_DATA_DIR": str(tmp_path / "data")}
    media = tmp_path / "media"
    for name in ("h264", "audio", "still"):
        copy_settled(library[name], media / library[name].name)
    dam = [sys.executable, "-m", "dam_assets.cli"]
    ingest = subprocess.run(
        [*dam, "ingest", str(media)], env=env, capture_output=True, text=True, timeout=600
    )
    assert ingest.returncode == 0, ingest.stderr
    status = json.loads(
        subprocess.run(
            [*dam, "status", "--json"], env=env, capture_output=True, text=True, timeout=300
        ).stdout
    )
    assert {a["asset"]: a["materialized"] for a in status["assets"]}["probe"] == 3
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        storage = type(instance.run_storage).__name__
        assert storage == ("PostgresRunStorage" if kind == "postgres" else "SqliteRunStorage")
        [run] = instance.get_runs()
        assert run.job_name == "index_media" and run.is_success
        assert len(instance.get_dynamic_partitions("media")) == 3
