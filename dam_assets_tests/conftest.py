from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test

from dam_assets.demo import samples as mf
from dam_assets.demo.tiny_clip import write_tiny_model
from dam_assets.demo.tiny_face_pack import write_tiny_face_pack

# CLIP weights cannot be downloaded here: every test (and every `dam` subprocess it starts)
# uses a small open_clip architecture with random weights, built now, before any test module
# imports the Dagster definitions (whose code version includes the model id).
_TINY_CLIP = Path(tempfile.mkdtemp(prefix="dam-tiny-clip-"))
TINY_CLIP_CONFIG, TINY_CLIP_WEIGHTS = write_tiny_model(_TINY_CLIP)
os.environ["DAM_CLIP_MODEL"] = str(TINY_CLIP_CONFIG)
os.environ["DAM_CLIP_PRETRAINED"] = str(TINY_CLIP_WEIGHTS)
# insightface packs cannot be downloaded either: a tiny detector + recognizer with insightface's
# interfaces, designed to see the coloured-square "faces" that samples.make_face_video draws.
TINY_FACE_PACK = write_tiny_face_pack(Path(tempfile.mkdtemp(prefix="dam-tiny-faces-")))
os.environ["DAM_FACE_MODEL"] = str(TINY_FACE_PACK)
from dam_assets.storage import Store  # noqa: E402

from .web_library import served  # noqa: E402, F401 (one library page for the web tests)


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> dict[str, Path]:
    """One generated library for the whole session (read-only for tests)."""
    return mf.make_library(tmp_path_factory.mktemp("library"))


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("DAM_DATA_DIR", str(path))
    return path


@pytest.fixture
def store(data_dir) -> Store:
    return Store(data_dir)


@pytest.fixture
def instance(tmp_path, monkeypatch) -> DagsterInstance:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def bad_files(tmp_path, library) -> dict[str, Path]:
    folder = tmp_path / "bad"
    folder.mkdir()
    files = {
        "empty": mf.make_zero_byte(folder / "empty.mp4"),
        "text": mf.make_text_as_video(folder / "notes.mov"),
        "truncated": mf.make_truncated(library["h264"], folder / "cut.mp4"),
        "corrupt": mf.make_corrupt(folder / "junk.mkv"),
    }
    for p in files.values():
        mf.age(p)
    return files


def copy_settled(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return mf.age(dst)


IS_ROOT = os.geteuid() == 0


def sensor_tick(instance, data_dir, root, cursor=None, **discovery):
    """One evaluation of the storage sensor watching `root`: (result, context)."""
    from dagster import build_sensor_context

    from dam_assets.defs.indexing.sensor import media_storage_sensor
    from dam_assets.defs.resources import DamStorage, MediaDiscovery

    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "storage": DamStorage(data_dir=str(data_dir)),
            # settling is tested on its own: here files are read at first sight
            "discovery": MediaDiscovery(
                watch_roots=str(root), **{"settle_seconds": 0, **discovery}
            ),
        },
    )
    return media_storage_sensor(context), context


def count_decoded(patch: pytest.MonkeyPatch) -> list:
    """The pts of every frame `frames_along` decodes from here on (through `_needed_frames`,
    the real decoder), so a test can say how much was decoded."""
    from dam_assets.media import frames

    decoded: list = []
    real = frames._needed_frames

    def counting(*args):
        for frame in real(*args):
            decoded.append(frame.pts)
            yield frame

    patch.setattr(frames, "_needed_frames", counting)
    return decoded
