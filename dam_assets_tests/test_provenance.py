"""Reused names never lose provenance: every (path, checksum) ever seen is kept, in order."""

from __future__ import annotations

import sqlite3
import time

from dam_assets.cli.runs import index_partitions
from dam_assets.library.discovery import scan
from dam_assets.storage import Store

from .conftest import copy_settled


def _offload(card, mount):
    """Copy a card onto the same mount point, the way an offload station does."""
    for name, src in card.items():
        copy_settled(src, mount / "DCIM" / name)


def test_reused_card_names_keep_every_content(tmp_path, library, store, instance):
    mount = tmp_path / "card"
    card_a = {"C0001.MP4": library["h264"], "C0002.MP4": library["vfr"]}
    card_b = {"C0001.MP4": library["prores"]}  # card B reuses C0001 for other footage
    _offload(card_a, mount)
    first = scan([mount], store, settle_seconds=0)
    outcome = index_partitions(first.checksums, store, instance=instance, say=str)
    assert not outcome.failed_runs
    a1 = first.by_path[str(mount / "DCIM" / "C0001.MP4")]

    (mount / "DCIM" / "C0002.MP4").unlink()  # card B has no C0002: the old file is gone
    _offload(card_b, mount)
    second = scan([mount], store, settle_seconds=0)
    b1 = second.by_path[str(mount / "DCIM" / "C0001.MP4")]
    assert b1 != a1 and second.new_versions == 1
    index_partitions(second.checksums, store, instance=instance, say=str)

    path = str(mount / "DCIM" / "C0001.MP4")
    rows = store.sql(
        "SELECT checksum, missing, replaced, content_present FROM media_files WHERE path = ?"
        " ORDER BY first_seen",
        [path],
    ).to_pylist()
    assert rows == [
        {"checksum": a1, "missing": True, "replaced": True, "content_present": False},
        {"checksum": b1, "missing": False, "replaced": False, "content_present": True},
    ]
    versions = store.sql(
        "SELECT version, checksum, previous_checksum, current, present FROM file_versions"
        " WHERE path = ? ORDER BY version",
        [path],
    ).to_pylist()
    assert versions == [
        {
            "version": 1,
            "checksum": a1,
            "previous_checksum": None,
            "current": False,
            "present": False,
        },
        {"version": 2, "checksum": b1, "previous_checksum": a1, "current": True, "present": True},
    ]
    # card A's probe rows are not orphaned: they still join to where they came from
    orphans = store.sql(
        "SELECT count(*) n FROM probe p ANTI JOIN media_files m USING (checksum)"
    ).to_pylist()[0]["n"]
    assert orphans == 0
    # the old content is gone for good from storage; nothing reads the path for it
    assert store.registry.present_paths(a1) == []
    assert store.registry.present_paths(b1) == [path]


def test_same_name_re_exported_back_and_forth_is_three_versions(tmp_path, library, store):
    path = tmp_path / "w" / "edit_v.mov"
    checksums = []
    for src in (library["h264"], library["prores"], library["h264"]):  # A, B, then A again
        copy_settled(src, path)
        checksums.append(scan([path.parent], store, settle_seconds=0).by_path[str(path)])
        time.sleep(0.01)
    history = store.sql(
        "SELECT version, checksum, previous_checksum, current FROM file_versions"
        " WHERE path = ? ORDER BY version",
        [str(path)],
    ).to_pylist()
    a, b, _ = checksums
    assert [
        (r["version"], r["checksum"], r["previous_checksum"], r["current"]) for r in history
    ] == [
        (1, a, None, False),
        (2, b, a, False),
        (3, a, b, True),
    ]
    [row] = store.sql(
        "SELECT missing, replaced, versions FROM media_files WHERE path = ? AND checksum = ?",
        [str(path), a],
    ).to_pylist()
    assert row == {"missing": False, "replaced": False, "versions": 2}


def test_rig_hint_belongs_to_the_content_not_the_name(tmp_path, library, store):
    mount = tmp_path / "card"
    clip = copy_settled(library["h264"], mount / "camA" / "A001.mov")
    first = scan([mount], store, settle_seconds=0)
    store.registry.set_rig([(str(clip), first.by_path[str(clip)])], "stage-a", str(mount))
    copy_settled(library["prores"], clip)  # another card at the same mount, not a rig card
    second = scan([mount], store, settle_seconds=0)
    hints = store.registry.rig_hints()
    assert hints == {(str(clip), first.by_path[str(clip)]): ("stage-a", str(mount))}
    assert (str(clip), second.by_path[str(clip)]) not in hints


def test_registry_of_an_older_version_is_migrated_in_place(tmp_path, library):
    """People have data: a registry keyed by path becomes version 1 of each path."""
    data = tmp_path / "data"
    data.mkdir()
    con = sqlite3.connect(data / "registry.sqlite")
    con.executescript(
        """
        CREATE TABLE files (path TEXT PRIMARY KEY, checksum TEXT NOT NULL, size INTEGER NOT
            NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, device INTEGER NOT NULL,
            root TEXT, media_kind TEXT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
            missing INTEGER NOT NULL DEFAULT 0, missing_since REAL);
        CREATE TABLE rig_hints (path TEXT PRIMARY KEY, rig TEXT NOT NULL, root TEXT NOT NULL);
        INSERT INTO files VALUES ('/m/a.mov', 'aa', 10, 1, 5, 1, '/m', 'video', 1.0, 2.0, 0,
            NULL);
        INSERT INTO files VALUES ('/m/b.mov', 'bb', 10, 1, 6, 1, '/m', 'video', 1.0, 2.0, 1,
            3.0);
        INSERT INTO rig_hints VALUES ('/m/a.mov', 'stage-a', '/m');
        """
    )
    con.close()
    store = Store(data)
    known = store.registry.known_files()
    assert {p: (k.checksum, k.missing) for p, k in known.items()} == {
        "/m/a.mov": ("aa", False),
        "/m/b.mov": ("bb", True),
    }
    assert store.registry.rig_hints() == {("/m/a.mov", "aa"): ("stage-a", "/m")}
    assert store.registry.present_paths("aa") == ["/m/a.mov"]
