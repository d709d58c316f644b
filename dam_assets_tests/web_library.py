"""One indexed library and one real `dam serve` for the library-page tests (HTTP and browser).

The media are generated: a spoken line (espeak-ng), colour bars long enough to scrub, a ProRes
clip (needs a proxy), three shots of the same "face" (one person for the tiny face pack), a
two-camera rig take, and a file whose name is HTML. Indexed through a real Dagster instance
in its own DAGSTER_HOME, proxies made by the `make_proxies` job, then served by `dam serve` as
a subprocess on a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dam_assets.demo import samples as mf

SPOKEN = "please send the footage to the editor tomorrow morning"
ODD_NAME = '<img src=x onerror=alert(1)> & "quotes".mp4'
RIGS = """
rigs:
  - name: stage-w
    root: {root}
    cameras:
      - {{id: A, role: hero, match: "camA/**"}}
      - {{id: B, role: witness, match: "camB/**"}}
"""


@dataclass
class Served:
    url: str
    env: dict[str, str]
    data: Path
    files: dict[str, Path]
    checksums: dict[str, str] = field(default_factory=dict)  # name -> checksum

    def get(self, path: str, headers: dict | None = None, method: str = "GET"):
        """(status, headers, body) of one request; 4xx/5xx are answers, not exceptions."""
        request = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def post(self, path: str, data: bytes, headers: dict | None = None):
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=120) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def dam(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dam_assets.cli", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _media(root: Path) -> dict[str, Path]:
    files = {
        "speech": mf.make_speech_video(root / "interviews" / "ana_interview.mp4", SPOKEN),
        "bars": mf.make_video(root / "broll" / "bars_long.mp4", seconds=12, gop=25),
        "prores": mf.make_video(
            root / "broll" / "bars_prores.mov", seconds=2, codec="prores_ks", size=(256, 144)
        ),
        "faces": mf.make_face_video(
            root / "people" / "three_shots.mp4",
            [[("red", (160, 128))], [("red", (320, 192))], [("red", (448, 256))]],
        ),
        "faces2": mf.make_face_video(
            root / "people" / "green_room.mp4",
            [[("green", (192, 128))], [("green", (352, 160))], [("green", (480, 224))]],
        ),
        "odd": mf.make_video(root / "odd" / ODD_NAME, seconds=3, size=(160, 120)),
        "broken": mf.make_text_as_video(root / "odd" / "shot_notes.mp4"),  # fails probe
    }
    clap = mf.clap_track(16, seed=5)
    rig = root / "stage-w"
    files["camA"] = mf.make_rig_clip(
        rig / "camA" / "A001.mp4", clap, 48000, 0.0, 14, size=(160, 90),
        metadata={"creation_time": "2024-05-01T10:00:00.000Z"},
    )  # fmt: skip
    files["camB"] = mf.make_rig_clip(
        rig / "camB" / "B001.mp4", clap, 48000, 1.5, 10, size=(160, 90),
        metadata={"creation_time": "2024-05-01T10:00:01.500Z"},
    )  # fmt: skip
    for path in files.values():
        mf.age(path)
    return files


def _index(root: Path, env: dict[str, str]) -> None:
    """Index in process through the instance of env's DAGSTER_HOME (what `dam ingest` does,
    without its process start-up), then make the proxies."""
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "DAM_DATA_DIR", "DAM_RIGS")}
    os.environ.update({k: env[k] for k in saved})
    try:
        from dagster import DagsterInstance

        from dam_assets.cli.runs import index_partitions
        from dam_assets.definitions import defs
        from dam_assets.defs.media.proxy_jobs import needing_proxies
        from dam_assets.library.discovery import scan
        from dam_assets.storage import Store

        store = Store(env["DAM_DATA_DIR"])
        report = scan([root], store, settle_seconds=0)
        with DagsterInstance.get() as instance:
            outcome = index_partitions(report.checksums, store, instance=instance, say=str)
            assert outcome.file_errors == 1, outcome  # the text file that is no video
            keys = list(report.checksums)
            todo = needing_proxies(instance, store, keys)
            assert len(todo) == 1, todo  # the ProRes clip, and only it
            job = defs.resolve_job_def("make_proxies")
            assert job.execute_in_process(instance=instance, partition_key=todo[0]).success
        store.refresh_catalog(force=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    base = tmp_path_factory.mktemp("web")
    files = _media(base / "media")
    (base / "rigs.yaml").write_text(RIGS.format(root=base / "media" / "stage-w"))
    (base / "dagster_home").mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(base / "dagster_home"),
        "DAM_DATA_DIR": str(base / "data"),
        "DAM_RIGS": str(base / "rigs.yaml"),
        "DAM_DAGSTER_URL": "http://dagster.example:3000",
    }
    _index(base / "media", env)
    log = open(base / "serve.log", "w")  # noqa: SIM115 (open while the server runs)
    server = subprocess.Popen(
        [sys.executable, "-m", "dam_assets.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    site = Served(f"http://127.0.0.1:{port}", env, base / "data", files)
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(OSError):
            if site.get("/api/status")[0] == 200:
                break
        assert server.poll() is None, (base / "serve.log").read_text()
        assert time.monotonic() < deadline, "dam serve did not answer within 120 s"
        time.sleep(0.3)
    rows = site.dam("sql", "SELECT path, checksum FROM media_files", "--json")
    by_path = {r["path"]: r["checksum"] for r in json.loads(rows.stdout)}
    site.checksums = {name: by_path[str(path)] for name, path in files.items()}
    yield site
    server.terminate()
    server.wait(30)
    log.close()
