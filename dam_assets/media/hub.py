"""Whether model downloads can work here, asked once and quickly.

huggingface_hub retries an unreachable host with back-off for half a minute; an offline
library should fail fast with instructions instead.
"""

from __future__ import annotations

import functools
import os
import socket


@functools.cache
def hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
