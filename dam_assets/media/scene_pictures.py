"""Each scene's chosen picture, kept from the scene-detection pass itself.

A scene's keyframe is its best-scored sample (`scenes.QualitySampler`), known only once the
scene has ended. Decoding it again afterwards costs, in long-GOP footage, everything from the
keyframe before it: up to a GOP per scene (0.4x one decode of an 8 s 4K HEVC clip). Instead,
the stream keeps the decoded frames the sampler scores; a sample is judged once it is `lag`
frames old, by then inside the scene it belongs to (detectors report a cut at most a
minimum scene length late), and only the best so far of each scene is converted and held,
at keyframe size. The pictures are the ones a decode would give: the same frames, converted
by the same code. A scene whose best sample was judged before a later cut split it has no
picture here, and `write_keyframes` decodes that one.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable

import av
from scenedetect import SceneDetector
from scenedetect.backends.pyav import VideoStreamAv

from .frames import Frame, picture_of, start_offset


class PictureStream(VideoStreamAv):
    """PySceneDetect's PyAV stream that also hands over the decoded frames of the frame
    numbers the sampler scores (every `every`-th), by frame number. The SceneManager reads in
    a thread a few frames ahead of its detectors, so `kept` holds a handful at most."""

    def __init__(self, path: str, every: int, **options):
        super().__init__(path, **options)
        self.every = every
        self.kept: dict[int, av.VideoFrame] = {}
        self.offset = start_offset(self._video_stream)

    def read(self, decode: bool = True):
        got = super().read(decode)
        if got is not False and decode:
            number = self.position.frame_num
            if number % self.every == 0:
                self.kept[number] = self._frame  # the frame this read decoded
        return got

    def take(self, number: int) -> av.VideoFrame | None:
        return self.kept.pop(number, None)


class BestPictures:
    """The pictures of each scene's best sample so far, at `side`, by frame number."""

    def __init__(self, lag: int, side: int, offset: float):
        self.lag, self.side, self.offset = lag, side, offset
        self.waiting: deque[tuple[int, float, av.VideoFrame]] = deque()
        self.cuts = [0]  # scene starts reported so far
        self.best: dict[int, tuple[float, int]] = {}  # scene start -> (score, frame number)
        self.pictures: dict[int, Frame] = {}

    def cut(self, number: int) -> None:
        bisect.insort(self.cuts, number)

    def offer(self, number: int, score: float, frame: av.VideoFrame) -> None:
        self.waiting.append((number, score, frame))
        while self.waiting and self.waiting[0][0] < number - self.lag:
            self._judge(*self.waiting.popleft())

    def finish(self) -> None:
        while self.waiting:
            self._judge(*self.waiting.popleft())

    def _judge(self, number: int, score: float, frame: av.VideoFrame) -> None:
        start = self.cuts[bisect.bisect_right(self.cuts, number) - 1]
        held = self.best.get(start)
        if held is not None and score <= held[0]:  # the first of equal scores, as max() picks
            return
        if held is not None:
            self.pictures.pop(held[1], None)
        self.best[start] = (score, number)
        self.pictures[number] = picture_of(frame, self.offset, self.side)


class ReportingDetector(SceneDetector):
    """A detector passed through as it is, telling `on_cut` each cut it reports (the moment
    a scene's samples can be judged against the right scene)."""

    def __init__(self, inner: SceneDetector, on_cut: Callable[[int], None]):
        super().__init__()
        self.inner, self.on_cut = inner, on_cut

    def _told(self, cuts: list) -> list:
        for cut in cuts:
            self.on_cut(cut.frame_num)
        return cuts

    def process_frame(self, timecode, frame_img) -> list:
        return self._told(self.inner.process_frame(timecode, frame_img))

    def post_process(self, timecode) -> list:
        return self._told(self.inner.post_process(timecode))

    @property
    def event_buffer_length(self) -> int:
        return self.inner.event_buffer_length

    @property
    def stats_manager(self):
        return self.inner.stats_manager

    @stats_manager.setter
    def stats_manager(self, value) -> None:
        self.inner.stats_manager = value

    def get_metrics(self) -> list[str]:
        return self.inner.get_metrics()
