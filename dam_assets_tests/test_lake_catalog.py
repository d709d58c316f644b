from __future__ import annotations

import duckdb
import pyarrow as pa

from dam_assets.storage import TABLES
from dam_assets.storage.catalog import connect
from dam_assets.storage.schemas import (
    THUMBNAILS,
    TIMELINE_AUDIO,
    TIMELINE_FRAMES,
    VIEWS,
    rows_to_table,
)

CK_A = "aa" + "0" * 62
CK_B = "ab" + "1" * 62
CK_C = "c0" + "2" * 62

DESIGN_VIEWS = {"media_files", "probe", "streams", "thumbnails", "ingest_errors"}


def _rows(checksum: str, n: int, label: str = "x") -> pa.Table:
    return rows_to_table(
        THUMBNAILS,
        [
            {"checksum": checksum, "kind": "poster", "size_label": label, "time_s": float(i)}
            for i in range(n)
        ],
    )


def _count(store, where: str = "") -> int:
    return store.sql(f"SELECT count(*) AS n FROM thumbnails {where}").column("n")[0].as_py()


def test_every_view_exists_and_is_typed_when_empty(store):
    store.refresh_catalog()
    con = connect(store.catalog_path)
    views = {
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    assert views >= DESIGN_VIEWS | {"timeline"} and set(TABLES) | set(VIEWS) == views
    for name, spec in TABLES.items():
        result = con.execute(f"SELECT * FROM {name}")
        assert result.fetchall() == []
        assert [d[0] for d in result.description] == spec.schema.names
    assert con.execute("SELECT * FROM timeline").fetchall() == []
    con.close()


def test_timeline_view_joins_picture_and_sound_per_second(store):
    """One row per (checksum, second) whichever side has it, in the file and in Store.sql."""
    picture = [{"checksum": CK_A, "second": s, "frames": 25, "brightness": 0.5} for s in (0, 1)]
    sound = [{"checksum": CK_A, "second": s, "rms_dbfs": -20.0, "silent": False} for s in (1, 2)]
    store.lake.write_unit("timeline_frames", CK_A, rows_to_table(TIMELINE_FRAMES, picture))
    store.lake.write_unit("timeline_audio", CK_A, rows_to_table(TIMELINE_AUDIO, sound))
    query = "SELECT second, frames, rms_dbfs FROM timeline ORDER BY second"
    expected = [(0, 25, None), (1, 25, -20.0), (2, None, -20.0)]
    got = store.sql(query)
    assert [tuple(r.values()) for r in got.to_pylist()] == expected
    store.refresh_catalog()
    con = connect(store.catalog_path)
    assert con.execute(query).fetchall() == expected
    con.close()


def test_unit_write_replaces_rows(store):
    store.lake.write_unit("thumbnails", CK_A, _rows(CK_A, 3))
    store.lake.write_unit("thumbnails", CK_A, _rows(CK_A, 2))
    assert _count(store) == 2


def test_compaction_keeps_rows_and_units_still_win(store):
    for ck in (CK_A, CK_B, CK_C):
        store.lake.write_unit("thumbnails", ck, _rows(ck, 2))
    before = store.sql("SELECT * FROM thumbnails ORDER BY checksum, time_s")
    stats = store.lake.compact("thumbnails")
    assert stats == {"units_merged": 3, "segments_written": 3}  # shards aa, ab, c0
    assert store.lake.unit_keys("thumbnails") == []
    after = store.sql("SELECT * FROM thumbnails ORDER BY checksum, time_s")
    assert after.equals(before)
    # Re-materializing a compacted partition: the new unit replaces its segment rows.
    store.lake.write_unit("thumbnails", CK_B, _rows(CK_B, 5, "new"))
    assert _count(store, f"WHERE checksum = '{CK_B}'") == 5
    assert _count(store, "WHERE size_label = 'x'") == 4
    # ... and an empty unit (a file that now yields nothing) hides them all.
    store.lake.write_unit("thumbnails", CK_A, THUMBNAILS.schema.empty_table())
    assert _count(store, f"WHERE checksum = '{CK_A}'") == 0
    store.lake.compact("thumbnails")
    assert _count(store) == 7 and store.lake.unit_keys("thumbnails") == []
    assert store.lake.read_units("thumbnails", [CK_B, CK_C]).num_rows == 7


def test_catalog_stays_readable_and_replaceable_while_a_reader_holds_it(store):
    store.lake.write_unit("thumbnails", CK_A, _rows(CK_A, 1))
    store.refresh_catalog()
    notebook = duckdb.connect(str(store.catalog_path), read_only=True)  # a notebook left open
    assert store.refresh_catalog(force=True) is True  # rebuilt by rename, no lock conflict
    store.lake.write_unit("thumbnails", CK_B, _rows(CK_B, 1))
    assert notebook.execute("SELECT count(*) FROM thumbnails").fetchone()[0] == 2
    assert _count(store) == 2
    notebook.close()


def test_no_temporary_files_left_behind(store):
    store.lake.write_unit("thumbnails", CK_A, _rows(CK_A, 1))
    store.lake.compact("thumbnails")
    store.refresh_catalog(force=True)
    leftovers = [p for p in store.data_dir.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_view_over_tables_is_made_after_one_of_them_was_queried(store, monkeypatch):
    """A process's views are made as queries first need them. `timeline` joins two tables;
    when one of them already had its view (an earlier query), making `timeline` must still
    hand its binding both tables' files."""
    from dam_assets.storage import catalog

    monkeypatch.setattr(catalog, "_databases", {})  # as a fresh process starts
    monkeypatch.setattr(catalog, "_views", set())
    assert store.sql("SELECT count(*) n FROM timeline_frames").column("n")[0].as_py() == 0
    assert store.sql("SELECT count(*) n FROM timeline").column("n")[0].as_py() == 0
