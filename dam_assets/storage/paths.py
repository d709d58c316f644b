"""File names as the operating system has them, and as tables and terminals show them.

A name on Linux is bytes; Python decodes bytes that are not UTF-8 (an old SMB share, Latin-1
from a camera) into lone surrogates, which open() accepts but SQLite, Parquet and JSON refuse.
The registry keeps such a name as its raw bytes; every table and message shows a readable
form in which the undecodable bytes are written `\\xNN`. Control characters (an ESC in a name
can recolour or rewrite a terminal) are escaped the same way wherever text is shown.
"""

from __future__ import annotations

import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_db(path: str) -> str | bytes:
    """What the registry stores: the name itself, or its raw bytes when it is not UTF-8."""
    return path if is_utf8(path) else os.fsencode(path)


def from_db(value: str | bytes) -> str:
    return value if isinstance(value, str) else os.fsdecode(value)


def raw_bytes(path: str) -> bytes | None:
    """The real bytes of a name that is not UTF-8 (None for ordinary names)."""
    return None if is_utf8(path) else os.fsencode(path)


def display_path(path: str | None) -> str | None:
    """The readable form of a name for tables and logs: undecodable bytes as `\\xNN`."""
    if path is None or is_utf8(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def safe_text(text: object) -> str:
    """Text fit for a terminal or Markdown: undecodable bytes and control characters (ESC,
    newlines inside a name, …) escaped as `\\xNN`."""
    shown = display_path(str(text)) or ""
    return _CONTROL.sub(_escape, shown)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
