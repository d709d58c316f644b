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

from dam_assets.storage import Store
from dam_assets.storage.lake import Lake
from dam_assets.storage.schemas import THUMBNAILS, rows_to_table

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


def _writer(root: str, rounds: int, grace_s: float | None) -> None:
    lake = Lake(root) if grace_s is None else Lake(root, grace_s=grace_s)
    rng = random.Random(7)
    version = {key: 0 for key in KEYS}
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


def _reader(kind: str, target: str, done, out, least: int, most: int) -> None:
    queries, problems, errors = 0, [], []
    con = duckdb.connect(target, read_only=True) if kind == "notebook" else None
    store = Store(target) if kind == "store" else None
    while queries < most and (queries < least or not done.is_set()):
        queries += 1
        try:
            if con is not None:
                cur = con.execute(QUERY)
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            else:
                rows = store.sql(QUERY).to_pylist()
        except Exception as exc:  # every failure is a finding; the parent reports them
            errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            continue
        problems.extend(_problems(rows))
    out.put({"kind": kind, "queries": queries, "problems": problems[:5], "errors": errors[:5]})


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
    ctx = multiprocessing.get_context("spawn")  # readers load DuckDB: never fork it
    done, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(k, t, done, out, 40, 2000)) for k, t in readers]
    for p in procs:
        p.start()
    writer = ctx.Process(target=_writer, args=(str(store.lake.root), rounds, grace_s))
    writer.start()
    writer.join(120)
    done.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert writer.exitcode == 0
    return results


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
    results = _run_loop(store, readers, rounds=60)
    for result in results:
        assert result["queries"] >= 40
        assert (result["kind"], result["errors"], result["problems"]) == (result["kind"], [], [])
    after = store.sql(QUERY).to_pylist()
    assert _problems(after) == []
