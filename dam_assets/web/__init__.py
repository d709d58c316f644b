"""The library page: search, see and play the moment, in a browser (`dam serve`)."""

from __future__ import annotations

import ipaddress
import sys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> int:
    """Serve the page until interrupted. On loopback only requests naming this machine are
    answered (a web page elsewhere cannot reach it by DNS rebinding); any other address is
    an explicit choice, and there is no login."""
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
    app = create_app(Library(), allowed_hosts=[*LOOPBACK, host] if local else None)
    shown = f"[{host}]" if ":" in host else host
    print(f"dam serve: the library page is on http://{shown}:{port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    return 0
