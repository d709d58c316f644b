"""Kept for the benchmarks: the generator lives in dam_assets.samples."""

from dam_assets.samples import age, make_audio, make_still, make_video  # noqa: F401
