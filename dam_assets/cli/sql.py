"""`dam sql` and `dam compact`."""

from __future__ import annotations

import argparse

from .. import settings
from .common import (
    EXIT_CRASH,
    EXIT_OK,
    print_table,
    say,
)


def cmd_sql(args: argparse.Namespace) -> int:
    from ..storage import Store

    store = Store(settings.data_dir())
    try:
        table = store.sql(args.query)
    except Exception as exc:  # duckdb errors carry a useful message already
        say(f"dam sql: {exc}")
        return EXIT_CRASH
    print_table(table, "json" if args.json else "csv" if args.csv else "text")
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    from ..storage import TABLES, Store

    store = Store(settings.data_dir())
    for name in TABLES:
        stats = store.lake.compact(name)
        if stats["units_merged"]:
            print(
                f"{name}: merged {stats['units_merged']} files into"
                f" {stats['segments_written']} segment(s)"
            )
    store.refresh_catalog(force=True)
    return EXIT_OK
