"""Whether model downloads can work here, asked once and quickly.

huggingface_hub retries an unreachable host with back-off for half a minute; an offline
library should fail fast with instructions instead.
"""

from __future__ import annotations

import functools
import socket

from ..settings import hub_offline


@functools.cache
def hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    if hub_offline():
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
