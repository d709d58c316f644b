"""Near-duplicate video: a half-size re-encode, a trimmed copy and a cropped copy group with
their original (the trim with its offset, the crop as `cropped`), another clip does not;
through real runs of scenes and the global asset, and `dam dupes --json`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
from dam_assets.defs.common.ranges import range_tags
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.media.near_dupes import Signature, find_near_duplicates, groups

from .conftest import copy_settled, sensor_tick

LOOKS = ("normal", "shaky", "blurred", "normal", "shaky")  # 3 s each


@pytest.fixture(scope="session")
def family(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dupes")
    original = mf.make_quality_video(
        folder / "original.mp4", looks=LOOKS, shot_seconds=3.0, size=(256, 192), seed=40
    )
    return {
        "original": original,
        "half": mf.make_derivative(original, folder / "half.mp4", scale=0.5),
        "trim": mf.make_derivative(original, folder / "trim.mp4", start_s=3.4, end_s=13.0),
        "crop": mf.make_derivative(original, folder / "crop.mp4", crop=0.1),
        "other": mf.make_quality_video(
            folder / "other.mp4", looks=LOOKS, shot_seconds=3.0, size=(256, 192), seed=70
        ),
    }


def test_trimmed_random_signature_is_found_with_its_offset():
    rng = np.random.default_rng(5)
    long = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    noise = np.uint64(1) << rng.integers(0, 64, 15).astype(np.uint64)  # one bit off a second
    sigs = [
        Signature("a", long, np.ones(40, bool)),
        Signature("b", long[12:27] ^ noise, np.ones(15, bool)),
        Signature("c", rng.integers(0, 2**62, 30).astype(np.uint64), np.ones(30, bool)),
    ]
    [match] = find_near_duplicates(sigs)
    assert (match.checksum_a, match.checksum_b, match.kind) == ("a", "b", "contained")
    assert match.offset_s == pytest.approx(12, abs=0.5) and match.overlap_s == 15
    assert groups([match]) == [["a", "b"]]


def test_a_cropped_trimmed_copy_is_found_by_the_middle_of_the_original():
    """A copy whose whole picture is the middle of another file's: found as `cropped`, with the
    original first and the copy's start in it; a file is never its own crop."""
    rng = np.random.default_rng(6)

    def random(n: int) -> np.ndarray:
        return rng.integers(0, 2**62, n).astype(np.uint64)

    whole, middle = random(40), random(40)
    noise = np.uint64(1) << rng.integers(0, 64, 20).astype(np.uint64)
    sigs = [
        Signature("a", whole, np.ones(40, bool), Signature("a", middle, np.ones(40, bool))),
        Signature(
            "b",
            middle[10:30] ^ noise,
            np.ones(20, bool),
            Signature("b", random(20), np.ones(20, bool)),
        ),
        Signature(
            "c", random(30), np.ones(30, bool), Signature("c", random(30), np.ones(30, bool))
        ),
    ]
    [match] = find_near_duplicates(sigs)
    assert (match.checksum_a, match.checksum_b, match.kind) == ("a", "b", "cropped")
    assert match.offset_s == pytest.approx(10, abs=0.5) and match.overlap_s == 20


def test_near_duplicates_from_a_real_run(
    instance, store, data_dir, tmp_path, family, capsys, monkeypatch
):
    from dam_assets.cli import main
    from dam_assets.definitions import defs

    root = tmp_path / "w"
    for path in family.values():
        copy_settled(path, root / path.name)
    report = scan([root], store, settle_seconds=0)
    ck = {name: report.by_path[str(root / path.name)] for name, path in family.items()}
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, report.checksums)
    ran = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance,
        tags=range_tags(report.checksums),
        asset_selection=[defs.resolve_assets_def(a).key for a in ("probe", "scenes")],
    )
    assert ran.success
    monkeypatch.chdir(tmp_path)  # dam works from DAGSTER_HOME
    capsys.readouterr()
    # out of date (never made): `dam dupes` runs find_near_duplicates through the instance
    assert main(["dupes", "--json"]) == 0
    [group] = json.loads(capsys.readouterr().out)["groups"]
    [run] = [r for r in instance.get_runs() if r.job_name == "find_near_duplicates"]
    assert run.is_success and run.tags["dam/source"] == "dam dupes"

    pairs = store.sql("SELECT * FROM near_duplicates").to_pylist()
    by_pair = {frozenset((p["checksum_a"], p["checksum_b"])): p for p in pairs}
    whole = {frozenset((ck[a], ck[b])) for a, b in [("original", "half"), ("original", "trim")]}
    whole.add(frozenset((ck["half"], ck["trim"])))
    cropped = {frozenset((ck[n], ck["crop"])) for n in ("original", "half")}
    # the trim and the crop are each changed twice over from one another; the group joins
    # them through the original either way
    maybe = {frozenset((ck["trim"], ck["crop"]))}
    assert whole | cropped <= set(by_pair) <= whole | cropped | maybe
    for pair in cropped | (maybe & set(by_pair)):  # the wider picture first
        p = by_pair[pair]
        assert p["kind"] == "cropped" and p["checksum_b"] == ck["crop"]
    crop = by_pair[frozenset((ck["original"], ck["crop"]))]
    assert (crop["checksum_a"], crop["checksum_b"]) == (ck["original"], ck["crop"])
    assert abs(crop["offset_s"]) < 0.3 and crop["score"] > 0.8
    half = by_pair[frozenset((ck["original"], ck["half"]))]
    assert half["kind"] == "same" and abs(half["offset_s"]) < 0.3 and half["score"] > 0.8
    trim = by_pair[frozenset((ck["original"], ck["trim"]))]
    assert (trim["checksum_a"], trim["checksum_b"], trim["kind"]) == (
        ck["original"],
        ck["trim"],
        "contained",
    )
    assert trim["offset_s"] == pytest.approx(3.4, abs=0.35)
    assert len({p["group_id"] for p in pairs}) == 1

    listed = {f["checksum"]: f["path"] for f in group["files"]}
    named = ("original", "half", "trim", "crop")
    assert listed == {ck[n]: str(root / family[n].name) for n in named}
    assert main(["dupes"]) == 0  # up to date now: no second run
    assert "group 1: 4 files" in capsys.readouterr().out
    assert len([r for r in instance.get_runs() if r.job_name == "find_near_duplicates"]) == 1

    # the sensor asks for a new grouping once the set of hashed videos changed, and only then
    result, _ = sensor_tick(instance, data_dir, root)
    assert [r for r in result.run_requests if r.job_name == "find_near_duplicates"]
    again, _ = sensor_tick(instance, data_dir, root, cursor=result.cursor)
    requests = getattr(again, "run_requests", None) or []
    assert not [r for r in requests if r.job_name == "find_near_duplicates"]


def test_videos_hashed_before_the_middle_hashes_are_counted(store):
    from dam_assets.library.dupes import without_middle_hashes
    from dam_assets.storage.schemas import TIMELINE_FRAMES, rows_to_table

    def second(checksum: str, i: int, centre: int | None) -> dict:
        return {"checksum": checksum, "second": i, "frames": 25, "brightness": 0.5,
                "motion": 0.1, "dhash": 1000 + i, "dhash_centre": centre}  # fmt: skip

    for checksum, centre in (("a" * 64, 7), ("b" * 64, None)):
        rows = [second(checksum, i, centre) for i in range(5)]
        store.lake.write_unit("timeline_frames", checksum, rows_to_table(TIMELINE_FRAMES, rows))
    assert without_middle_hashes(store) == 1
