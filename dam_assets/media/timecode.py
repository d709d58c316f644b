"""SMPTE timecode: parsing, drop-frame arithmetic, and conversion to seconds."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TC = re.compile(r"^\s*(\d{1,2})[:;.](\d{2})[:;.](\d{2})([:;.,])(\d{2,3})\s*$")


@dataclass(frozen=True)
class Timecode:
    hours: int
    minutes: int
    seconds: int
    frames: int
    drop_frame: bool

    def __str__(self) -> str:
        sep = ";" if self.drop_frame else ":"
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}{sep}{self.frames:02d}"


def nominal_rate(fps: float) -> int:
    """29.97 counts as 30 frames per timecode second, 59.94 as 60, 23.976 as 24."""
    return round(fps)


def is_drop_rate(fps: float) -> bool:
    return abs(fps * 1001 / 1000 - round(fps * 1001 / 1000)) < 0.01 and round(fps) in (30, 60)


def parse_timecode(text: str, fps: float) -> Timecode:
    """'10:00:00:00', drop-frame '01:00:00;02' (';' or ',' before the frames), or '.'."""
    m = _TC.match(text)
    if not m:
        raise ValueError(f"not a timecode: {text!r}")
    h, mi, s, sep, f = m.groups()
    tc = Timecode(int(h), int(mi), int(s), int(f), sep in ";,")
    if tc.minutes > 59 or tc.seconds > 59 or tc.frames >= nominal_rate(fps):
        raise ValueError(f"timecode {text!r} out of range at {fps} fps")
    if tc.drop_frame and tc.seconds == 0 and tc.minutes % 10 and tc.frames < _dropped(fps):
        raise ValueError(f"{text!r} does not exist in drop-frame timecode")
    return tc


def _dropped(fps: float) -> int:
    return 2 * nominal_rate(fps) // 30  # 2 frame numbers a minute at 29.97, 4 at 59.94


def to_frames(tc: Timecode, fps: float) -> int:
    """Frame count since 00:00:00:00 (drop-frame numbers skipped)."""
    rate = nominal_rate(fps)
    total_minutes = tc.hours * 60 + tc.minutes
    frames = (tc.hours * 3600 + tc.minutes * 60 + tc.seconds) * rate + tc.frames
    if tc.drop_frame:
        frames -= _dropped(fps) * (total_minutes - total_minutes // 10)
    return frames


def from_frames(frames: int, fps: float, drop_frame: bool = False) -> Timecode:
    rate = nominal_rate(fps)
    if drop_frame:
        drop = _dropped(fps)
        per_10min = rate * 600 - drop * 9
        per_min = rate * 60 - drop
        tens, rem = divmod(frames, per_10min)
        if rem >= drop:
            frames += drop * 9 * tens + drop * ((rem - drop) // per_min)
        else:
            frames += drop * 9 * tens
    h, rem = divmod(frames, rate * 3600)
    m, rem = divmod(rem, rate * 60)
    s, f = divmod(rem, rate)
    return Timecode(h % 24, m, s, f, drop_frame)


def to_seconds(tc: Timecode, fps: float) -> float:
    """Seconds since midnight on the timecode clock. Drop-frame counts real time at 29.97;
    non-drop-frame labels are time of day at the nominal rate, so cameras at 23.976 and 25 fps
    jammed to one timecode source agree."""
    if tc.drop_frame:
        return to_frames(tc, fps) / fps
    return to_frames(tc, fps) / nominal_rate(fps)
