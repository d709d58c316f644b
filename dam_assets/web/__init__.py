"""The library page: search, see and play the moment, in a browser (`dam serve`)."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    log_level: str = "warning",
    asset_status: Callable[[], list[dict]] | None = None,
) -> int:
    """Serve the page until interrupted. On loopback only requests naming this machine are
    answered (a web page elsewhere cannot reach it by DNS rebinding); any other address is
    an explicit choice, and there is no login. `asset_status` gives the status page the
    Dagster instance's per-asset partition counts (the CLI passes it in: web/ knows no defs)."""
    import uvicorn

    from .app import LOOPBACK, create_app
    from .library import Library

    local = is_loopback(host)
    if not local:
        print(
            f"dam serve: WARNING: listening on {host}, not on this machine only. The library"
            " page has no login: anyone who can reach this address can watch every indexed"
            " file and rename people.",
            file=sys.stderr,
        )
    hosts = [*LOOPBACK, host] if local else None
    app = create_app(Library(asset_status=asset_status), allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    print(f"dam serve: the library page is on http://{shown}:{port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)  # fmt: skip
    # a browser playing a file holds its response open: stopping waits 5 s for it, not forever
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0
