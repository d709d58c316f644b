"""Frame rates and times as editing programs count them: exact rationals and SMPTE labels.

Probe stores rates as rounded floats (23.976024); an NLE counts 24000/1001 exactly, and a
clip an hour into its timecode is off by frames if the two are mixed up. Drop-frame
arithmetic itself lives in `media/timecode.py`.
"""

from __future__ import annotations

from fractions import Fraction

from ...media.timecode import from_frames, parse_timecode, to_frames

STANDARD_RATES = tuple(
    Fraction(n, d)
    for n, d in (
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (48000, 1001),
        (48, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
        (120000, 1001),
        (120, 1),
    )
)


def exact_rate(fps: float | Fraction | None) -> Fraction | None:
    """The standard rate a measured one stands for (within 0.2 %), else the measured one as a
    small rational. None for no rate."""
    if not fps or fps <= 0:
        return None
    best = min(STANDARD_RATES, key=lambda r: abs(float(r) - float(fps)))
    if abs(float(best) - float(fps)) <= 0.002 * float(fps):
        return best
    return Fraction(fps).limit_denominator(1001)


def frame_at(seconds: float, rate: Fraction) -> int:
    """The frame shown at `seconds` from the file's start (times of frames land on them)."""
    return round(seconds * float(rate))


def start_frame(timecode: str | None, rate: Fraction) -> tuple[int, bool] | None:
    """The frame number a start timecode names, and whether it is drop-frame; None when there
    is none or it does not exist at this rate."""
    if not timecode:
        return None
    try:
        tc = parse_timecode(timecode, float(rate))
    except ValueError:
        return None
    return to_frames(tc, float(rate)), tc.drop_frame


def label(frames: int, rate: Fraction, drop_frame: bool = False) -> str:
    """SMPTE label of a frame number ('01:00:00;02' for drop-frame)."""
    return str(from_frames(int(frames), float(rate), drop_frame))


def is_drop_rate(rate: Fraction) -> bool:
    return rate.denominator == 1001 and rate.numerator in (30000, 60000)


def rational_seconds(frames: int | Fraction, rate: Fraction) -> str:
    """FCPXML time: seconds as a reduced rational, '1001/24000s', '3600s' or '0s'."""
    value = Fraction(frames) / rate
    if value.denominator == 1:
        return f"{value.numerator}s"
    return f"{value.numerator}/{value.denominator}s"


def parse_rational_seconds(text: str | None) -> Fraction:
    """Inverse of `rational_seconds` (for reading FCPXML back)."""
    if not text or text == "0s":
        return Fraction(0)
    return Fraction(text.removesuffix("s"))
