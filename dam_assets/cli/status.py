"""`dam status`: per asset, what is materialized, missing and failed."""

from __future__ import annotations

import argparse
import json

import pyarrow as pa

from .. import settings
from .common import (
    EXIT_OK,
    open_instance,
    print_table,
    use_instance_home,
)

READ_BUDGET_S = 5.0  # reading new materializations; past it, Dagster's own (slower) query


def cmd_status(args: argparse.Namespace) -> int:

    use_instance_home()
    instance = open_instance()  # an unreachable instance is said before anything loads

    from ..defs.indexing.status import partition_counts
    from ..storage import Store

    store = Store(settings.data_dir())
    errors = store.sql(
        "SELECT stage, count(DISTINCT checksum) AS n FROM ingest_errors"
        " WHERE checksum IS NOT NULL GROUP BY stage"
    )
    recorded = {r["stage"]: r["n"] for r in errors.to_pylist()}
    rows = [
        {**r, "file_errors": recorded.get(r["asset"], 0)}
        for r in partition_counts(instance, store, budget_s=READ_BUDGET_S)
    ]
    files = store.sql(
        "SELECT count(*) FILTER (WHERE NOT missing) AS files,"
        " count(DISTINCT path) FILTER (WHERE missing AND NOT replaced) AS missing,"
        " count(DISTINCT path) FILTER (WHERE replaced) AS replaced,"
        " count(DISTINCT checksum) FILTER (WHERE content_present) AS contents,"
        " count(DISTINCT checksum) FILTER (WHERE NOT content_present) AS contents_gone"
        " FROM media_files"
    ).to_pylist()[0]
    discovery = store.sql(
        "SELECT count(*) AS n FROM ingest_errors WHERE stage = 'discovery'"
    ).to_pylist()[0]["n"]
    people = store.sql(
        "SELECT (SELECT count(*) FROM people WHERE faces > 0 OR name IS NOT NULL) AS people,"
        " (SELECT count(*) FROM people WHERE name IS NOT NULL) AS named,"
        " (SELECT count(*) FROM face_tracks) AS tracks,"
        " (SELECT count(*) FROM face_clusters) AS tracks_placed"
    ).to_pylist()[0]
    # an asset whose model is not installed shows as missing: say why, as `dam ingest` does
    waiting = {stage: row["message"] for stage, row in store.skips().items()}
    if args.json:
        out = {
            "assets": rows,
            "files": files,
            "discovery_errors": discovery,
            "people": people,
            "waiting_for_model": waiting,
        }
        print(json.dumps(out))
        return EXIT_OK
    print_table(pa.Table.from_pylist(rows))
    missing = {r["asset"]: r["missing"] for r in rows}
    for stage, message in waiting.items():
        print(f"{stage}: {missing.get(stage, 0)} missing, waiting for a model: {message}")
    print(
        f"people: {people['people']} ({people['named']} named); {people['tracks_placed']} of"
        f" {people['tracks']} face tracks placed (`dam faces list`)."
    )
    print(
        f"files: {files['files']} present, {files['contents']} distinct contents;"
        f" {files['missing']} gone, {files['replaced']} now hold other content (the earlier"
        f" content is kept in file_versions), {files['contents_gone']} content(s) no longer"
        f" on storage; {discovery} file(s) could not be read at discovery."
        "\n'file_errors' counts files recorded in ingest_errors: `dam sql \"SELECT * FROM"
        ' ingest_errors"` lists them.'
    )
    return EXIT_OK
