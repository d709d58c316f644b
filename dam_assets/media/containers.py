"""Opening media files to decode them, the one way every reader here does it (`probe` alone
asks FFmpeg for everything it can learn).

FFmpeg's stream probing (`avformat_find_stream_info`) decodes the first H.264 pictures to learn
what an MP4 or MOV header already says (all but the pixel format): 0.45 s for each opening of
a 4K file, 0.16 s at 1080p, and the pipeline opens a file several times. For those containers
the probing decoders skip every picture, and probing stops after `PROBE_BYTES` (else it would
read on, looking for the pixel format it skipped). Other containers are opened the usual way:
MPEG-TS and raw streams describe their streams only in the data, and in Matroska the probing
decode is what tells the H.264 decoder its reorder depth when the stream does not say it (the
first B-frames would be lost; MP4 and MOV carry it in their composition offsets). Decoding
afterwards is untouched: PyAV sets up its own decoders after probing.
"""

from __future__ import annotations

from pathlib import Path

import av
import av.container

PROBE_BYTES = 1 << 20
_QUICKTIME_ATOMS = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


def _described_by_header(path: str | Path) -> bool:
    """ISO-BMFF/QuickTime, from the first bytes (an unreadable file is left to av.open, whose
    error the callers know)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head[4:8] in _QUICKTIME_ATOMS


def open_input(path: str | Path, **kwargs) -> av.container.InputContainer:
    if not _described_by_header(path):
        return av.open(str(path), **kwargs)
    return av.open(
        str(path),
        options={"skip_frame": "all"},
        container_options={"probesize": str(PROBE_BYTES)},
        **kwargs,
    )
