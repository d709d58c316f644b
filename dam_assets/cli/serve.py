"""`dam serve`: the library page on this machine (dam_assets/web/)."""

from __future__ import annotations

import argparse

from .common import open_instance, use_instance_home


def cmd_serve(args: argparse.Namespace) -> int:
    from .. import settings
    from ..defs.indexing.status import partition_counts
    from ..defs.media.proxies import proxies
    from ..storage import Store
    from ..web import serve

    use_instance_home()  # the status page reads the Dagster instance, as `dam status` does

    def asset_status() -> list[dict]:
        with open_instance() as instance:
            return partition_counts(instance, Store(settings.data_dir()), [proxies])

    return serve(args.host, args.port, asset_status=asset_status)


def serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (8765)")
    parser.set_defaults(func=cmd_serve)
