"""Faces: tracking, people clustering with stable ids and names, and the insightface path.

insightface's packs cannot be downloaded here, so the end-to-end tests use the tiny pack that
conftest.py builds (dam_assets/media/face_pack_tiny.py): an SCRFD-style detector and an
ArcFace-style recognizer, exported to ONNX, loaded by insightface's own FaceAnalysis. They are
designed, not trained: they find the coloured squares that `samples.make_face_video` draws and
embed them by colour, so red, green and blue are three "people". Clustering is tested on
generated embeddings with known identities.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from dam_assets.cli.runs import cluster_faces, index_partitions
from dam_assets.demo import samples as mf
from dam_assets.library.discovery import scan
from dam_assets.media.face_clusters import (
    Assignment,
    ClusterParams,
    PeopleState,
    update_people,
)
from dam_assets.media.face_tracks import FaceSample, link_tracks
from dam_assets.media.frames import decode_all, frames_along
from dam_assets.models.base import ModelUnavailable
from dam_assets.models.faces import FaceModel, FaceSettings

from .conftest import TINY_FACE_PACK, count_decoded, sensor_tick

DIM = 512


# -- generated embeddings -------------------------------------------------------------------------
def identities(n_people: int, seed: int = 0, noise: float = 0.03, sizes=(3, 12)):
    """Tracks of `n_people` identities: (track ids, vectors, frames, true person per track).
    Within one person cosine similarity is about 0.6, across people about 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, DIM))
    ids, vectors, frames, truth = [], [], [], []
    for person in range(n_people):
        for k in range(int(rng.integers(sizes[0], sizes[1] + 1))):
            ids.append(f"p{person}-s{seed}-t{k}")
            vectors.append(centres[person] / np.linalg.norm(centres[person]))
            vectors[-1] = vectors[-1] + rng.normal(scale=noise, size=DIM)
            frames.append(frozenset({(person * 1000 + k) << 8 | seed}))  # never shared
            truth.append(person)
    return ids, np.array(vectors, np.float32), frames, truth


def pairwise_precision_recall(assignments: dict[str, Assignment], ids, truth):
    found = {t: a.person_id for t, a in assignments.items()}
    tp = fp = fn = 0
    for (i, a), (j, b) in combinations(enumerate(ids), 2):
        same_truth = truth[i] == truth[j]
        same_found = a in found and b in found and found[a] == found[b]
        tp += same_truth and same_found
        fp += same_found and not same_truth
        fn += same_truth and not same_found
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


@pytest.mark.parametrize("full", [True, False], ids=["recluster", "incremental"])
def test_clustering_recovers_known_people(full):
    ids, x, frames, truth = identities(40)
    state = PeopleState()
    outcome = update_people(ids, x, frames, state, full=full)
    precision, recall = pairwise_precision_recall(outcome.assignments, ids, truth)
    print(
        f"{'re-cluster' if full else 'incremental'}: precision {precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= 0.99 and recall >= 0.95
    assert len(outcome.centroids) == 40 and sorted(outcome.created) == list(range(1, 41))
    assert all(a.distance < 0.5 for a in outcome.assignments.values())


def test_incremental_joins_known_people_and_needs_three_to_make_one():
    ids, x, frames, truth = identities(5, seed=1)
    first = update_people(ids, x, frames, PeopleState())
    state = PeopleState(
        assignments=first.assignments,
        names={p: None for p in first.centroids},
        centroids=first.centroids,
        next_id=6,
    )
    person_of = {truth[i]: first.assignments[t].person_id for i, t in enumerate(ids)}
    # new appearances of known people, plus two of a stranger
    more_ids, more_x, _, more_truth = identities(5, seed=1, sizes=(1, 1))
    more_ids = [t + "-new" for t in more_ids]
    stranger = np.random.default_rng(9).normal(size=DIM)
    stranger_x = [stranger + np.random.default_rng(s).normal(scale=0.03, size=DIM) for s in (1, 2)]
    all_ids = ids + more_ids + ["s-1", "s-2"]
    all_x = np.vstack([x, more_x, np.array(stranger_x, np.float32)])
    new_frames = [frozenset({1 << 40 | i}) for i in range(len(more_ids))]  # seen elsewhere
    all_frames = frames + new_frames + [frozenset({7}), frozenset({8})]
    second = update_people(all_ids, all_x, all_frames, state)
    for t, person in zip(more_ids, more_truth, strict=True):
        assert second.assignments[t].person_id == person_of[person]
    assert "s-1" not in second.assignments and not second.created  # two are not enough
    third_x = np.vstack([all_x, (stranger + 0.01)[None].astype(np.float32)])
    state.assignments = second.assignments
    third = update_people([*all_ids, "s-3"], third_x, [*all_frames, frozenset({9})], state)
    assert third.created == [6]
    assert {third.assignments[t].person_id for t in ("s-1", "s-2", "s-3")} == {6}


def test_ids_and_names_survive_a_recluster():
    ids, x, frames, truth = identities(8, seed=2)
    first = update_people(ids, x, frames, PeopleState(), full=True)
    pid_of = {truth[i]: first.assignments[t].person_id for i, t in enumerate(ids)}
    # person 0 is named (its tracks pinned, as `dam faces label` does); person 1 is named and
    # all its tracks will disappear (a re-run of its file): it must not be dropped.
    assignments = {
        t: Assignment(a.person_id, a.distance, "user" if a.person_id == pid_of[0] else "auto")
        for t, a in first.assignments.items()
    }
    names = {p: None for p in first.centroids}
    names[pid_of[0]], names[pid_of[1]] = "Alice", "Bob"
    state = PeopleState(assignments, names, first.centroids, next_id=9)
    keep = [i for i, p in enumerate(truth) if p != 1]
    rng = np.random.default_rng(5)
    order = rng.permutation(len(keep))  # another order must not change the outcome
    sel = [keep[i] for i in order]
    again = update_people([ids[i] for i in sel], x[sel], [frames[i] for i in sel], state, full=True)
    for i in sel:
        assert again.assignments[ids[i]].person_id == pid_of[truth[i]]
    assert pid_of[1] in again.centroids and pid_of[1] not in again.dropped
    assert not again.created
    user = [t for t, a in again.assignments.items() if a.source == "user"]
    assert user and all(again.assignments[t].person_id == pid_of[0] for t in user)


def test_two_faces_of_one_frame_are_never_one_person():
    rng = np.random.default_rng(3)
    v = rng.normal(size=DIM)
    # six near-identical tracks, but 0/1, 2/3 and 4/5 were seen in the same frames (twins)
    x = np.array([v + rng.normal(scale=0.01, size=DIM) for _ in range(6)], np.float32)
    frames = [frozenset({i // 2}) for i in range(6)]
    ids = [f"t{i}" for i in range(6)]
    for full in (True, False):
        out = update_people(ids, x, frames, PeopleState(), ClusterParams(min_faces=3), full=full)
        for a, b in ((0, 1), (2, 3), (4, 5)):
            pa, pb = out.assignments.get(ids[a]), out.assignments.get(ids[b])
            assert not (pa and pb and pa.person_id == pb.person_id)
        assert len({a.person_id for a in out.assignments.values()}) == 2


# -- tracking -------------------------------------------------------------------------------------
def _sample(t, x, person, rng):
    vec = np.eye(DIM)[person] + rng.normal(scale=0.01, size=DIM)
    return FaceSample(t, np.array([x, 100, x + 64, 164], float), vec / np.linalg.norm(vec))


def test_tracks_follow_faces_and_respect_gaps_and_cuts():
    rng = np.random.default_rng(0)
    samples = []
    for i in range(12):  # 0 … 5.5 s at 2 samples per second
        t = i * 0.5
        samples.append(_sample(t, 100 + 4 * i, 0, rng))  # A drifts right; a cut at 4.1 s
        if i not in (5, 6, 7):  # B unseen for 1.5 s: a new track after the gap
            samples.append(_sample(t, 400, 1, rng))
        if i == 3:  # C seen twice only: dropped
            samples.append(_sample(t, 250, 2, rng))
            samples.append(_sample(t + 0.5, 250, 2, rng))
    samples.append(_sample(5.5, 560, 0, rng))  # A's look, far away: not A's track
    tracks = link_tracks(samples, cuts=[4.1])
    spans = sorted((tr.start_s, tr.end_s, len(tr.members), tr.members[0].bbox[0]) for tr in tracks)
    # B's return at 4.0 s is alone before the cut (dropped), then a track after it
    assert spans == [(0.0, 2.0, 5, 400), (0.0, 4.0, 9, 100), (4.5, 5.5, 3, 136), (4.5, 5.5, 3, 400)]
    assert all(s.track is None for s in samples if s.bbox[0] in (250, 560))


def test_two_faces_of_one_frame_are_never_one_track():
    rng = np.random.default_rng(1)
    samples = [_sample(i * 0.5, 100, 0, rng) for i in range(8)]
    samples += [_sample(i * 0.5, 110, 0, rng) for i in range(2, 6)]  # a twin, overlapping
    tracks = link_tracks(samples)
    assert sum(len(tr.members) for tr in tracks) == len(samples)
    for track in tracks:
        times = [m.time_s for m in track.members]
        assert len(times) == len(set(times))  # one detection per frame
    assert len(tracks) == 2


# -- frames ---------------------------------------------------------------------------------------
def test_frames_along_gives_each_requested_moment_once(tmp_path):
    clip = mf.make_video(tmp_path / "v.mp4", seconds=6.0, fps=25, gop=50, audio=False)
    every = [f.time for f in frames_along(clip, [i / 25 for i in range(150)], max_side=None)]
    assert len(every) == decode_all(clip) == 150
    dense = [round(f.time, 2) for f in frames_along(clip, [0.5 * i for i in range(12)])]
    assert dense == [round(int(0.5 * i * 25 + 1e-6) / 25, 2) for i in range(12)]  # on screen
    sparse = [round(f.time, 2) for f in frames_along(clip, [0.3, 5.01], seek_gap_s=1.0)]
    assert sparse == [0.28, 5.0]
    # intra-only ProRes: every frame is a keyframe, so each request is one seek
    prores = mf.make_video(tmp_path / "p.mov", seconds=3.0, codec="prores_ks", size=(256, 144))
    with pytest.MonkeyPatch.context() as patch:
        decoded = count_decoded(patch)
        picked = [round(f.time, 2) for f in frames_along(prores, [0.5 * i for i in range(6)])]
    assert picked == [0.0, 0.48, 1.0, 1.48, 2.0, 2.48]
    assert 6 <= len(decoded) < 20  # of 75 frames


# -- the insightface path -------------------------------------------------------------------------
def test_missing_pack_names_pack_size_place_and_licence(tmp_path):
    with pytest.raises(ModelUnavailable) as info:
        FaceModel(FaceSettings(model="buffalo_s"), tmp_path).load()
    message = str(info.value)
    assert "buffalo_s" in message and "159 MB" in message
    assert str(tmp_path / "insightface" / "models" / "buffalo_s") in message
    assert "non-commercial" in message and "buffalo_s.zip" in message


def test_tiny_pack_through_insightface_finds_and_tells_apart(tmp_path):
    model = FaceModel(FaceSettings(model=str(TINY_FACE_PACK)), tmp_path).load()
    img = np.full((360, 640, 3), 100, np.uint8)
    for colour, centre in (("red", (160, 128)), ("green", (448, 224)), ("blue", (512, 64))):
        mf.draw_face(img, centre, colour)
    bgr = np.ascontiguousarray(img[:, :, ::-1])
    faces = sorted(model.detect(bgr), key=lambda f: f.bbox[0])
    assert [tuple(f.bbox.astype(int)) for f in faces] == [
        (128, 96, 192, 160),
        (416, 192, 480, 256),
        (480, 32, 544, 96),
    ]
    vectors = model.embed([model.align(bgr, f) for f in faces])
    assert vectors.shape == (3, 512)
    sims = vectors @ vectors.T
    assert np.allclose(np.diag(sims), 1, atol=1e-4) and (sims[~np.eye(3, dtype=bool)] < 0).all()
    assert not model.detect(np.ascontiguousarray(mf.bars_frame(640, 360, 0)[:, :, ::-1]))


FACE_SHOTS = {
    "a.mp4": [
        [("red", (160, 128)), ("green", (448, 224))],
        [("red", (320, 192))],
        [("blue", (192, 96)), ("red", (448, 256))],
    ],
    "b.mp4": [[("green", (320, 160))], [("red", (160, 224)), ("blue", (480, 128))]],
}


@pytest.fixture
def faces_indexed(instance, store, tmp_path):
    root = tmp_path / "faces"
    for name, shots in FACE_SHOTS.items():
        mf.age(mf.make_face_video(root / name, shots))
    report = scan([root], store, settle_seconds=0)
    outcome = index_partitions(report.checksums, store, instance=instance, say=str)
    assert not outcome.failed_runs
    return report, root


def _dam(data_dir, *args):
    env = {**os.environ, "DAM_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "dam_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_ingest_finds_tracks_and_people(faces_indexed, store, data_dir, instance):
    report, root = faces_indexed
    a = report.by_path[str(root / "a.mp4")]
    tracks = store.sql(
        "SELECT checksum, start_s, end_s, detections, best_crop FROM face_tracks"
        " ORDER BY checksum, start_s, track_id"
    ).to_pylist()
    # a.mp4: 3 shots of 3 s; b.mp4: 2 shots; one track per face per shot
    assert len([t for t in tracks if t["checksum"] == a]) == 5 and len(tracks) == 8
    assert all(t["detections"] >= 3 and Path(t["best_crop"]).is_file() for t in tracks)
    assert all(t["end_s"] - t["start_s"] >= 2.0 for t in tracks)
    faces = store.sql("SELECT * FROM faces").to_pylist()
    assert all(f["track_id"] and len(f["landmarks"]) == 10 for f in faces)
    assert all(f["det_score"] >= 0.7 and f["x2"] - f["x1"] >= 40 for f in faces)
    assert all(Path(f["crop"]).is_file() for f in faces)
    assert not list(store.thumbnails_dir.glob("*/*/faces.*"))  # staging folders swapped in
    assert store.face_vectors.count() == len(faces)
    assert store.track_vectors.count() == len(tracks)
    # red appears 4 times (a person); green and blue twice each (not yet people)
    listed = json.loads(_dam(data_dir, "faces", "list", "--json"))
    assert [(p["faces"], p["files"]) for p in listed] == [(4, 2)]
    red = listed[0]
    ranges = {Path(f["path"]).name: f["ranges"] for f in red["appearances"]}
    assert ranges["b.mp4"] == [[3.0, pytest.approx(5.9, abs=0.2)]]
    assert ranges["a.mp4"][0][0] == 0.0 and ranges["a.mp4"][-1][1] > 8.0
    text = _dam(data_dir, "faces", "list")
    assert "4 appearance(s) in 2 file(s)" in text and "b.mp4  0:03.00–0:05." in text

    # a name survives a re-cluster; search by name and by id agree
    _dam(data_dir, "faces", "label", str(red["person_id"]), "Ruby")
    _run_id, ok = cluster_faces(instance, recluster=True)
    assert ok
    again = json.loads(_dam(data_dir, "faces", "list", "--json"))
    assert [(p["person_id"], p["name"]) for p in again] == [(red["person_id"], "Ruby")]
    by_name = json.loads(_dam(data_dir, "search", "--person", "ruby", "--json"))
    by_id = json.loads(_dam(data_dir, "search", "--person", str(red["person_id"]), "--json"))
    assert by_name == by_id and {Path(f["path"]).name for f in by_name} == {"a.mp4", "b.mp4"}
    # the catalog filters hold for people too (they were ignored: every file came back)
    assert json.loads(_dam(data_dir, "search", "--person", "ruby", "--min-duration", "3600",
                           "--json")) == []  # fmt: skip
    assert json.loads(_dam(data_dir, "search", "--person", "ruby", "--max-duration", "3600",
                           "--json")) == by_name  # fmt: skip
    people = store.sql("SELECT name, faces, files FROM people").to_pylist()
    assert people == [{"name": "Ruby", "faces": 4, "files": 2}]
    clusters = store.sql("SELECT DISTINCT source FROM face_clusters").column(0).to_pylist()
    assert clusters == ["user"]


def test_more_footage_makes_new_people_and_merge(
    faces_indexed, store, data_dir, instance, tmp_path
):
    # a third file with green once more: green reaches three appearances and becomes a person
    root = tmp_path / "more"
    mf.age(mf.make_face_video(root / "c.mp4", [[("green", (192, 192))]]))
    report = scan([root], store, settle_seconds=0)
    assert not index_partitions(report.checksums, store, instance=instance, say=str).failed_runs
    listed = json.loads(_dam(data_dir, "faces", "list", "--json"))
    assert sorted((p["faces"], p["files"]) for p in listed) == [(3, 3), (4, 2)]
    red, green = sorted(listed, key=lambda p: -p["faces"])
    assert green["person_id"] > red["person_id"]
    # the user says they are one person (the machine never would: different colours)
    out = _dam(data_dir, "faces", "merge", str(red["person_id"]), str(green["person_id"]))
    assert f"person {green['person_id']} merged into {red['person_id']}" in out
    assert cluster_faces(instance, recluster=True)[1]
    merged = json.loads(_dam(data_dir, "faces", "list", "--json"))
    assert [(p["person_id"], p["faces"]) for p in merged] == [(red["person_id"], 7)]
    # the merged id still finds the person
    assert json.loads(_dam(data_dir, "search", "--person", str(green["person_id"]), "--json"))


def test_missing_pack_skips_only_the_faces_step(instance, store, tmp_path, monkeypatch):
    from dam_assets.definitions import defs
    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME

    clip = mf.age(mf.make_face_video(tmp_path / "m" / "x.mp4", [[("red", (160, 128))]]))
    [checksum] = scan([clip.parent], store, settle_seconds=0).checksums
    instance.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, [checksum])
    monkeypatch.setenv("DAM_FACE_MODEL", "buffalo_l")
    result = defs.resolve_job_def("index_media").execute_in_process(
        instance=instance, partition_key=checksum, raise_on_error=False
    )
    assert result.success  # not a failure: the pack is not installed yet
    materialized = {
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert {"probe", "scenes", "clip_embeddings"} <= materialized and "faces" not in materialized
    message = store.skips()["faces"]["message"]
    assert "buffalo_l" in message and "326 MB" in message and "non-commercial" in message


def test_face_checks_pass_then_name_the_damaged_file(faces_indexed, store, instance):
    from dagster import build_asset_check_context

    from dam_assets.defs.people.checks import faces_match_vectors_and_crops, people_are_consistent
    from dam_assets.defs.resources import DamStorage

    storage = DamStorage(data_dir=str(store.data_dir))
    context = build_asset_check_context(instance=instance)
    assert faces_match_vectors_and_crops(context, storage).passed
    people = people_are_consistent(context, storage)
    assert people.passed and people.metadata["checked"].value == 4
    [face] = store.sql("SELECT checksum, crop FROM faces LIMIT 1").to_pylist()
    Path(face["crop"]).unlink()
    failing = faces_match_vectors_and_crops(context, storage)
    assert not failing.passed and failing.metadata["partitions"].value == face["checksum"]


def test_a_file_analysed_again_keeps_its_people_and_pins(tmp_path):
    from dam_assets.media.face_tracks import carry_over, stable_track_ids
    from dam_assets.storage.people import PeopleStore, PersonNotFound

    box_a, box_b = [100, 100, 164, 164], [400, 100, 464, 164]
    old = [("f:t0", t, box_a) for t in (0, 0.5, 1)] + [("f:t1", t, box_b) for t in (1, 1.5, 2)]
    # the new run found another face first, so its numbers moved; b's track is gone
    new = [("f:t0", t, [300, 300, 364, 364]) for t in (0, 0.5)]
    new += [("f:t1", t, [102, 101, 166, 165]) for t in (0, 0.5, 1)]
    follows = carry_over(old, new)
    assert follows == {"f:t0": "f:t1"}
    # a's track keeps its id, the new face gets one no old track used
    assert stable_track_ids(["f:t0", "f:t1"], follows, ["f:t0", "f:t1"], "f") == {
        "f:t1": "f:t0",
        "f:t0": "f:t2",
    }

    people = PeopleStore(tmp_path / "people.sqlite")
    vec = np.ones(4, np.float32) / 2
    people.save(
        {
            "f:t0": Assignment(1, 0.1),
            "f:t1": Assignment(2, 0.1),
            "g:t0": Assignment(1, 0.2),
        },
        {1: vec, 2: vec},
        [],
        considered=["f:t0", "f:t1", "g:t0"],
        existing={"f:t0", "f:t1", "g:t0"},
        model_id="m",
    )
    people.label(1, "Ana")
    people.label(2, "Bea")  # b is pinned too: its pin goes once its track is gone
    with pytest.raises(ValueError, match="already 'Ana'"):
        people.label(2, "ana")
    with pytest.raises(ValueError, match="person id"):
        people.label(2, "2024")
    # the next clustering run after the re-analysis: f:t1 is gone, f:t0 and f:t2 exist
    people.save({}, {1: vec}, [], [], {"f:t0", "f:t2", "g:t0"}, "m")
    state = people.state("m")
    assert state.assignments == {
        "f:t0": Assignment(1, 0.1, "user"),
        "g:t0": Assignment(1, 0.2, "user"),
    }
    assert state.names == {1: "Ana", 2: "Bea"} and set(people.state("other").centroids) == set()
    # a run that saw only g's track leaves f's placements alone
    people.save({"g:t0": Assignment(1, 0.3)}, {1: vec}, [], ["g:t0"], {"f:t0", "g:t0"}, "m")
    assert set(people.state().assignments) == {"f:t0", "g:t0"}
    people.merge(1, 2)
    with pytest.raises(PersonNotFound):
        people.label(2, "Bea")
    assert people.resolve("ANA") == 1


def test_sensor_places_new_faces_and_nightly_reclusters(instance, data_dir, tmp_path):
    from dagster import SensorResult, build_schedule_context

    from dam_assets.definitions import defs
    from dam_assets.defs.people.jobs import nightly_face_recluster

    inbox = tmp_path / "inbox"
    mf.age(mf.make_face_video(inbox / "a.mp4", FACE_SHOTS["a.mp4"]))

    def tick(cursor=None):
        return sensor_tick(instance, data_dir, inbox, cursor)[0]

    first = tick()
    [add] = first.dynamic_partitions_requests
    instance.add_dynamic_partitions("media", list(add.partition_keys))
    for request in first.run_requests:
        job = defs.resolve_job_def("index_media")
        assert job.execute_in_process(instance=instance, tags=request.tags).success
    second = tick(first.cursor)
    assert isinstance(second, SensorResult)
    # new videos also ask for a new near-duplicate grouping
    [people] = [r for r in second.run_requests if r.job_name != "find_near_duplicates"]
    assert people.job_name == "cluster_faces"
    assert defs.resolve_job_def("cluster_faces").execute_in_process(instance=instance).success
    assert not isinstance(tick(second.cursor), SensorResult)  # people are current now
    store_people = json.loads(_dam(data_dir, "faces", "list", "--json"))
    assert [p["faces"] for p in store_people] == [3]

    [nightly] = nightly_face_recluster.evaluate_tick(
        build_schedule_context(instance=instance)
    ).run_requests
    assert nightly.run_config == {"ops": {"face_clusters": {"config": {"recluster": True}}}}
    result = defs.resolve_job_def("cluster_faces").execute_in_process(
        instance=instance, run_config=nightly.run_config
    )
    [materialized] = result.get_asset_materialization_events()
    metadata = materialized.materialization.metadata
    assert metadata["mode"].value == "re-cluster" and metadata["people"].value == 1
    assert json.loads(_dam(data_dir, "faces", "list", "--json")) == store_people  # same ids


def test_a_failed_recognizer_batch_fails_only_its_faces(tmp_path, monkeypatch):
    from PIL import Image

    from dam_assets.media.faces import face_batcher, find_faces
    from dam_assets.media.frames import Frame

    model = FaceModel(FaceSettings(model=str(TINY_FACE_PACK), batch_size=2), tmp_path).load()
    real_embed, calls = FaceModel.embed, []

    def first_batch_fails(self, aligned):
        calls.append(len(aligned))
        if len(calls) == 1:
            raise RuntimeError("onnxruntime: out of memory")
        return real_embed(self, aligned)

    monkeypatch.setattr(FaceModel, "embed", first_batch_fails)
    img = np.full((360, 640, 3), 100, np.uint8)
    mf.draw_face(img, (160, 128), "red")
    frames = [Frame(t, Image.fromarray(img)) for t in (0.0, 0.5, 1.0, 1.5)]
    batcher = face_batcher(model)
    found, looked = find_faces(frames, model, batcher, tmp_path / "crops")
    batcher.flush()
    assert looked == 4 and calls == [2, 2]
    assert [f.sample.vector.size for f in found] == [0, 0, 512, 512]
    assert batcher.error == "RuntimeError: onnxruntime: out of memory"
