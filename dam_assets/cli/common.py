"""What every `dam` command shares: the Dagster instance it works through, exit codes, and
output that is safe to print (names are escaped)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import date, datetime

import pyarrow as pa

from .. import settings
from ..storage.paths import safe_text

EXIT_OK, EXIT_CRASH, EXIT_SOME_ERRORS = 0, 1, 2


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def use_instance_home() -> None:
    """DAGSTER_HOME defaults to the project root. Dagster resolves the relative storage folders
    of its dagster.yaml against the working directory, so work from DAGSTER_HOME (else `cd
    /mnt/card && dam ingest .` starts a second instance there); what the working directory
    decides (data folder, rigs.yaml) is settled first."""
    from ..library.rigs import rigs_path

    home = settings.dagster_home()
    settings.pin(
        DAM_DATA_DIR=settings.data_dir(), DAM_RIGS=rigs_path().absolute(), DAGSTER_HOME=home
    )
    home.mkdir(parents=True, exist_ok=True)
    os.chdir(home)


class InstanceUnreachable(Exception):
    """The Dagster instance's database cannot be reached: one line says so."""


def open_instance():
    """The Dagster instance of $DAGSTER_HOME. When it lives in PostgreSQL and the server does
    not answer, say so in seconds instead of waiting through the driver's retries."""
    import socket

    from dagster import DagsterInstance

    address = settings.instance_postgres_address()
    if address:
        try:
            socket.create_connection(address, timeout=3).close()
        except OSError as exc:
            raise InstanceUnreachable(
                f"the Dagster instance's PostgreSQL server {address[0]}:{address[1]} is"
                f" unreachable ({exc.strerror or exc}); start it, or check dagster.yaml and"
                " DAGSTER_PG_URL"
            ) from exc
    return DagsterInstance.get()


# -- output -------------------------------------------------------------------------------------
def jsonable(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def print_table(table: pa.Table, fmt: str = "text", max_width: int = 60) -> None:
    rows = table.to_pylist()
    if fmt == "json":
        print(json.dumps([{k: jsonable(v) for k, v in r.items()} for r in rows], indent=1))
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(table.column_names)
        writer.writerows([[jsonable(v) for v in r.values()] for r in rows])
        return
    cols = table.column_names
    cells = [[cell(r[c], max_width) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def cell(value, max_width: int) -> str:
    if value is None:
        return ""
    text = f"{value:.3f}" if isinstance(value, float) else safe_text(jsonable(value))
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes:d}:{secs:05.2f}"


def ranges(ranges: list[list[float]]) -> str:
    return ", ".join(f"{clock(a)}–{clock(b)}" for a, b in ranges)


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 1 (2 means "some files had problems")
        self.print_usage(sys.stderr)
        self.exit(EXIT_CRASH, f"{self.prog}: error: {message}\n")
