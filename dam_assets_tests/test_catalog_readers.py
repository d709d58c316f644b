"""Readers of the lake never block the pipeline and never see a partition twice or not at all.

Real processes: a SQL tool holding `catalog.duckdb` read-write, and readers (a notebook's
read-only connection, `Store.sql`) looping while another process rewrites units and compacts.
"""

from __future__ import annotations

import multiprocessing
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dam_assets.storage import TABLES, Store
from dam_assets.storage.catalog import view_sql
from dam_assets.storage.lake import Lake
from dam_assets.storage.schemas import MEDIA_FILES, THUMBNAILS, rows_to_table

KEYS = [f"{p}{i:062x}" for p in ("aa", "ab", "c0", "d1") for i in range(6)]  # 4 shards
TOGGLE = "e2" + "f" * 62  # cleared and refilled in turn: absent or one version, never mixed
QUERY = "SELECT checksum, size_label, count(*) AS n FROM thumbnails GROUP BY ALL"

_HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write, as the DuckDB CLI and DBeaver open a file
con.execute("SELECT count(*) FROM thumbnails").fetchall()
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def _version(key: str, v: int) -> pa.Table:
    """Version `v` of a partition: its rows all carry the label `v:n`, n being their count."""
    n = 1 + (v + int(key[-1], 16)) % 3
    rows = [
        {"checksum": key, "kind": "poster", "size_label": f"{v}:{n}", "time_s": float(i)}
        for i in range(n)
    ]
    return rows_to_table(THUMBNAILS, rows)


def _problems(rows: list[dict]) -> list[str]:
    """Every key exactly once (one label, all its rows); the toggled key absent or once."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["checksum"], []).append(row)
    found = []
    for key in [*KEYS, TOGGLE]:
        got = groups.pop(key, [])
        if not got and key == TOGGLE:
            continue
        if len(got) != 1 or got[0]["n"] != int(got[0]["size_label"].split(":")[1]):
            found.append(f"{key[:4]}: {[(g['size_label'], g['n']) for g in got]}")
    return found + [f"unexpected {k[:4]}" for k in groups]


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict]:
    cur = con.execute(query)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _labels(rows: list[dict]) -> dict[str, str]:
    return {r["checksum"]: r["size_label"] for r in rows}


def _writer(root: str, rounds: int, grace_s: float | None, start, out) -> None:
    lake = Lake(root) if grace_s is None else Lake(root, grace_s=grace_s)
    rng = random.Random(7)
    version = {key: 0 for key in KEYS}
    purged = 0
    start.wait()  # every reader is looping
    for r in range(rounds):
        for key in rng.sample(KEYS, 3):
            version[key] += 1
            lake.write_unit("thumbnails", key, _version(key, version[key]))
        if r % 2:
            lake.clear_unit("thumbnails", TOGGLE)
        else:
            lake.write_unit("thumbnails", TOGGLE, _version(TOGGLE, r))
        if r % 4 == 3:
            lake.compact("thumbnails")
        if grace_s is not None:
            purged += lake.purge("thumbnails") or 0  # None: a reader held the lock
    if grace_s is not None:
        out.put({"kind": "writer", "purged": purged})


def _reader(kind: str, target: str, start, done, out, least: int, most: int) -> None:
    queries, during, problems, errors = 0, 0, [], []
    con = duckdb.connect(target, read_only=True) if kind == "notebook" else None
    store = Store(target) if kind == "store" else None
    start.wait()
    while queries < most and (queries < least or not done.is_set()):
        queries += 1
        during += not done.is_set()
        try:
            rows = _rows(con, QUERY) if con is not None else store.sql(QUERY).to_pylist()
        except Exception as exc:  # every failure is a finding; the parent reports them
            errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            continue
        problems.extend(_problems(rows))
    result = {"kind": kind, "queries": queries, "during": during}
    out.put({**result, "problems": problems[:5], "errors": errors[:5]})


def _seed(store: Store) -> None:
    """Every key written and compacted once, half of them written again as loose units."""
    for key in KEYS:
        store.lake.write_unit("thumbnails", key, _version(key, 0))
    store.lake.compact("thumbnails")
    for key in KEYS[::2]:
        store.lake.write_unit("thumbnails", key, _version(key, 0))
    store.refresh_catalog()
    assert _problems(store.sql(QUERY).to_pylist()) == []


def _run_loop(store: Store, readers: list[tuple[str, str]], rounds: int, grace_s=None):
    """Readers loop in their own processes while a writer process runs `rounds` rounds."""
    ctx = multiprocessing.get_context("spawn")  # the readers load DuckDB: never fork it
    start, done, out = ctx.Barrier(len(readers) + 1), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_reader, args=(k, t, start, done, out, 10, 2000)) for k, t in readers
    ]
    writer = ctx.Process(target=_writer, args=(str(store.lake.root), rounds, grace_s, start, out))
    for p in [*procs, writer]:
        p.start()
    writer.join(120)
    done.set()
    results = [out.get(timeout=120) for _ in range(len(procs) + (grace_s is not None))]
    for p in procs:
        p.join(30)
    assert writer.exitcode == 0
    return sorted(results, key=lambda r: r["kind"] == "writer")


def _hold_read_write(path: Path) -> subprocess.Popen:
    tool = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert tool.stdout.readline().strip() == "holding"
    return tool


def test_pipeline_reads_while_a_sql_tool_holds_the_catalog_read_write(store):
    store.lake.write_unit("thumbnails", KEYS[0], _version(KEYS[0], 0))
    store.refresh_catalog()
    tool = _hold_read_write(store.catalog_path)
    try:
        count = "SELECT count(*) AS n FROM thumbnails"
        assert store.sql(count).to_pylist() == [{"n": 1}]  # the sensor's, checks', ingest's reads
        store.lake.write_unit("thumbnails", KEYS[1], _version(KEYS[1], 0))
        assert store.sql(count).to_pylist() == [{"n": 3}]
        # The rebuild renames a new file over the held one; people then open the new one.
        assert store.refresh_catalog(force=True) is True
        notebook = duckdb.connect(str(store.catalog_path), read_only=True)
        assert notebook.execute(count).fetchone() == (3,)
        notebook.close()
        assert store.sql(count).to_pylist() == [{"n": 3}]
        assert tool.poll() is None  # the tool's session was never disturbed
    finally:
        tool.stdin.close()
        tool.wait(30)


def test_readers_see_each_partition_once_while_units_are_rewritten_and_compacted(store):
    _seed(store)
    readers = [("notebook", str(store.catalog_path)), ("store", str(store.data_dir))]
    results = _run_loop(store, readers, rounds=30)
    for result in results:
        assert result["during"] >= 5  # queries really ran while the lake changed
        assert (result["kind"], result["errors"], result["problems"]) == (result["kind"], [], [])
    assert _problems(store.sql(QUERY).to_pylist()) == []


def test_store_sql_never_loses_a_file_while_purge_runs(store):
    """No grace period: every round unlinks what it superseded at once. `Store.sql` holds the
    lake's readers lock, so none of its queries loses a file it listed."""
    _seed(store)
    reader, writer = _run_loop(store, [("store", str(store.data_dir))], rounds=30, grace_s=0)
    assert writer["purged"] > 100
    assert reader["during"] >= 5
    assert (reader["errors"], reader["problems"]) == ([], [])
    assert _problems(store.sql(QUERY).to_pylist()) == []


def _between(con: duckdb.DuckDBPyConnection, action) -> list:
    """Run `action` once as DuckDB binds the first data scan of the next query: the view has
    started, the scans have not listed their files yet (an interleaving injected there).
    Append anything to the returned list to arm it (creating the view binds the scans too)."""
    armed: list = []

    def hook(glob: str) -> str:
        if len(armed) == 1:
            armed.append(glob)
            action()
        return glob

    con.create_function("dam_between", hook, [str], str, side_effects=False)
    return armed


def _hooked_files(table: str, kind: str, globs) -> str:
    return "[" + ", ".join(f"dam_between('{g}')" for g in globs) + "]"


def test_a_query_sees_the_lake_as_it_was_when_it_started(store):
    _seed(store)
    lake, spec = store.lake, TABLES["thumbnails"]

    def everything_changes(v: int):
        lake.write_unit("thumbnails", KEYS[0], _version(KEYS[0], v))  # a compacted key again
        lake.clear_unit("thumbnails", KEYS[7 + v % 2])
        lake.compact("thumbnails")  # the old segments and units stop being current
        lake.write_unit("thumbnails", KEYS[13], _version(KEYS[13], v))

    before = store.sql(QUERY).to_pylist()
    # The catalog file's view, as a notebook runs it: files newer than the query are ignored.
    con = duckdb.connect()
    armed = _between(con, lambda: everything_changes(9))
    con.execute(view_sql(lake, spec, files=_hooked_files))
    armed.append(True)
    assert sorted(_rows(con, QUERY), key=str) == sorted(before, key=str)
    assert len(armed) == 2  # the changes did land mid-query
    after = store.sql(QUERY).to_pylist()
    labels = _labels(after)
    assert labels[KEYS[0]].startswith("9:") and KEYS[8] not in labels
    assert labels[KEYS[13]].startswith("9:") and len(labels) == len(KEYS) - 1
    # Store.sql's views read the listing taken before the query: the same holds.
    con = duckdb.connect()
    armed = _between(con, lambda: everything_changes(10))
    con.register("listed", lake.listing("thumbnails"))
    con.execute(view_sql(lake, spec, listing="listed", files=_hooked_files))
    armed.append(True)
    assert sorted(_rows(con, QUERY), key=str) == sorted(after, key=str)
    labels = _labels(store.sql(QUERY).to_pylist())
    assert labels[KEYS[0]].startswith("10:") and KEYS[7] not in labels


def test_purge_keeps_what_is_current_and_removes_the_rest(store):
    lake = store.lake
    lake.grace_s = 0  # no grace period: what is superseded can go at once
    a, b, c = KEYS[0], KEYS[1], KEYS[12]
    for v in range(3):
        lake.write_unit("thumbnails", a, _version(a, v))
    lake.write_unit("thumbnails", b, _version(b, 0))
    lake.compact("thumbnails")
    lake.clear_unit("thumbnails", b)  # compacted, then cleared
    lake.write_unit("thumbnails", c, _version(c, 5))
    expected = {a: "2:3", c: "5:3"}
    assert _labels(store.sql(QUERY).to_pylist()) == expected
    assert Lake(lake.root).purge("thumbnails") == 0  # the default grace: nothing is old enough
    lake.purge("thumbnails")
    v2 = store.lake.table_dir("thumbnails") / "v2"
    names = sorted(p.relative_to(v2).as_posix().split("@")[0] for p in v2.rglob("*.parquet"))
    # a's versions went into the segment; b's clearing unit and c's unit are current.
    current = [f"units/aa/{b}", f"units/c0/{c}"]
    assert names == ["segments/_anchor.parquet", "segments/aa", "units/_/_anchor.parquet", *current]
    assert _labels(store.sql(QUERY).to_pylist()) == expected
    assert lake.read_units("thumbnails", [a, b, c]).num_rows == 6
    # A catalog refresh (every sensor tick) purges what compaction left once its grace ran out.
    for key in (a, c):
        lake.write_unit("thumbnails", key, _version(key, 7))
    lake.compact("thumbnails")
    units = store.lake.table_dir("thumbnails") / "v2" / "units"
    assert len(list(units.rglob("*@*.parquet"))) == 3  # a, c and b's clearing unit, merged
    store.refresh_catalog()
    assert list(units.rglob("*@*.parquet")) == []
    assert _labels(store.sql(QUERY).to_pylist()) == {a: "7:2", c: "7:2"}
    # An error that was recorded and cleared leaves no file behind once purged.
    store.record_stage_error("probe", a, "/x.mp4", "Broken", "moov atom not found")
    assert store.sql("SELECT count(*) AS n FROM ingest_errors").to_pylist() == [{"n": 1}]
    store.clear_stage_error("probe", a)
    assert store.sql("SELECT count(*) AS n FROM ingest_errors").to_pylist() == [{"n": 0}]
    lake.purge("ingest_errors")
    errors = store.lake.table_dir("ingest_errors") / "v2" / "units"
    assert [p.name for p in errors.rglob("*.parquet")] == ["_anchor.parquet"]


def _legacy(data: Path) -> None:
    """A lake as the code before generations wrote it (`<key>.parquet`, `<shard>.parquet`)."""
    a, b, c, d = KEYS[0], KEYS[1], KEYS[12], KEYS[18]
    thumbs = data / "lake" / "thumbnails"
    empty = THUMBNAILS.schema.empty_table()
    files = {
        "units/_/_anchor.parquet": empty,
        "segments/_anchor.parquet": empty,
        "segments/aa.parquet": pa.concat_tables([_version(a, 1), _version(b, 1)]),
        "segments/c0.parquet": _version(c, 1),
        "segments/d1.parquet": _version(d, 1),  # no unit: compaction rewrites it all the same
        f"units/aa/{a}.parquet": _version(a, 2),  # a unit beats its segment
        f"units/aa/{b}.parquet": empty,  # and an empty one clears it
    }
    for name, table in files.items():
        (thumbs / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, thumbs / name)
    row = {"path": "/m/a.mp4", "checksum": a, "size_bytes": 1, "missing": False}
    (data / "lake" / "media_files").mkdir(parents=True)
    pq.write_table(
        rows_to_table(MEDIA_FILES, [row]), data / "lake" / "media_files" / "snapshot.parquet"
    )


def test_a_lake_in_the_old_layout_is_read_then_merged_and_purged(store):
    _legacy(store.data_dir)
    a, b, c = KEYS[0], KEYS[1], KEYS[12]
    expected = {a: "2:3", c: "1:2", KEYS[18]: "1:2"}
    assert _labels(store.sql(QUERY).to_pylist()) == expected
    notebook = duckdb.connect(str(store.catalog_path), read_only=True)
    assert _labels(_rows(notebook, QUERY)) == expected
    assert store.sql("SELECT path FROM media_files").to_pylist() == [{"path": "/m/a.mp4"}]
    assert store.lake.read_units("thumbnails", [a, b, c]).num_rows == 5
    store.lake.write_unit("thumbnails", c, _version(c, 3))  # new writes beat old files
    expected[c] = "3:1"
    assert _labels(store.sql(QUERY).to_pylist()) == expected
    assert store.lake.compact("thumbnails")["units_merged"] == 3  # a, b (old) and c (new)
    lake = Lake(store.lake.root, grace_s=0)
    lake.purge("thumbnails")
    old = store.lake.table_dir("thumbnails")
    left = sorted(p.relative_to(old).as_posix() for p in old.glob("[!v]*/**/*.parquet"))
    assert left == ["segments/_anchor.parquet", "units/_/_anchor.parquet"]  # old globs valid
    assert _labels(store.sql(QUERY).to_pylist()) == expected
    assert _labels(_rows(notebook, QUERY)) == expected
    notebook.close()
    store.export_registry()  # a new media_files snapshot supersedes the old one
    lake.purge("media_files")
    assert not (store.lake.table_dir("media_files") / "snapshot.parquet").exists()
    assert store.refresh_catalog() is True  # its view no longer reads the old file
    assert store.sql("SELECT count(*) AS n FROM media_files").to_pylist() == [{"n": 0}]


def test_writes_work_where_files_cannot_be_hard_linked(store, monkeypatch):
    """Some file systems refuse hard links (EPERM; injected here, none is mounted): a write
    then renames the staged file to its new name, which is still never an existing file."""
    import errno

    from dam_assets.storage import lake as lake_module

    refused = []

    def no_links(src, dst):
        refused.append(dst)
        raise OSError(errno.EPERM, "Operation not permitted", str(dst))

    monkeypatch.setattr(lake_module.os, "link", no_links)
    for v in range(2):
        store.lake.write_unit("thumbnails", KEYS[0], _version(KEYS[0], v))
    store.lake.compact("thumbnails")
    store.lake.write_unit("thumbnails", KEYS[1], _version(KEYS[1], 0))
    assert _labels(store.sql(QUERY).to_pylist()) == {KEYS[0]: "1:2", KEYS[1]: "0:2"}
    assert [p for p in store.data_dir.rglob("*") if p.name.endswith(".tmp")] == []
    assert len(refused) == 4  # three units and a segment, all renamed into place instead
