"""Sound as cameras and recorders hear it: speech on a set, through different microphones.

A sound stage is what happens on the set: two people talking (espeak-ng, two voices, from a
script whose every word is known, so word error rate can be measured), room tone, a slate clap
and now and then a door or footsteps. Each microphone hears it its own way (`Mic`):

- the room: the stage convolved with an impulse response (direct sound at t = 0, early
  reflections, an exponentially decaying diffuse tail of the microphone's RT60, mixed at its
  direct-to-reverberant ratio), so a far camera mic hears mostly room;
- its band (a zero-phase Butterworth band-pass, so it colours the sound without moving it:
  the truth of an offset stays the direct sound's arrival), its level (and clipping when hot),
  its own noise (pink hiss at a signal-to-noise ratio, mains hum on one);
- its clock: sample rate and drift, applied when the camera file is written
  (`samples.make_rig_clip`).

Not a test module: pytest collects nothing here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from scipy import signal

from dam_assets.demo.samples import speech_samples

RATE = 48000

SENTENCES = [
    "The morning train was late again, so Maria walked down to the harbor instead.",
    "She bought a coffee from the small kiosk by the ferry terminal.",
    "The fishing boats came in slowly while the gulls circled above the nets.",
    "At nine o'clock her phone rang, and it was her brother asking for a favor.",
    "Could she pick up the children after school on Thursday afternoon?",
    "His meeting in the city had been moved to the end of the week.",
    "She said yes, of course, and reminded him to bring the blue bag.",
    "We need two more lights on the left side before we roll the next take.",
    "The director wants the camera lower, almost at the height of the table.",
    "Please check the focus on the second actor when she turns to the window.",
    "The sound recordist asked everyone to stay quiet for thirty seconds of room tone.",
    "After lunch the crew moved the equipment to the old warehouse by the river.",
    "The roof was leaking, so they covered the cables with plastic sheets.",
    "Nobody expected the weather to change so quickly in the middle of summer.",
    "The editor will need the files from both cameras by Monday morning.",
    "We recorded the interview in three parts because the battery ran out twice.",
    "The museum opens at ten, but the guided tours start an hour later.",
    "A small dog ran across the square and stopped in front of the fountain.",
    "The children laughed when it tried to catch the water with its mouth.",
    "In the evening the street market sells fresh bread, cheese and vegetables.",
    "My grandfather worked in that factory for almost forty years.",
    "He still remembers the sound of the machines starting every morning at six.",
    "The new bridge will connect the two halves of the town by next spring.",
    "Most people here travel by bicycle, even when it rains in the winter.",
    "The library keeps old newspapers in a cold room in the basement.",
    "You can read them there, but you are not allowed to take any photographs.",
    "The last bus leaves the station at a quarter past eleven at night.",
    "If you miss it, you will have to walk home along the coast road.",
    "The musicians practiced the same song for hours until it sounded right.",
    "Their concert on Saturday was sold out within a single afternoon.",
    "The garden behind the house is full of apple trees and wild flowers.",
    "Every autumn the family makes juice from the apples that fall on the grass.",
    "The storm knocked down three trees and left the village without power.",
    "Workers from the city arrived early the next day to repair the lines.",
    "She opened the window and listened to the rain falling on the roof.",
    "Tomorrow we will shoot the scene on the beach if the wind calms down.",
]
VOICES = ("en-us", "en-gb")


def script(words: int, seed: int) -> list[str]:
    """Sentences in a seeded order, repeating as needed, until about `words` words."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    count = 0
    while count < words:
        for i in rng.permutation(len(SENTENCES)):
            out.append(SENTENCES[i])
            count += len(SENTENCES[i].split())
            if count >= words:
                break
    return out


@functools.lru_cache(maxsize=64)
def _spoken(text: str, voice: str, wpm: int) -> np.ndarray:
    """espeak-ng's reading of `text`, mono float32 at RATE (each chunk is synthesized once)."""
    return speech_samples(text, RATE, wpm, voice)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise of unit RMS, by shaping white noise's spectrum."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


@dataclass
class Stage:
    samples: np.ndarray  # mono float32 at RATE
    text: str  # every word spoken, in order
    speech_s: float


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def stage(seconds: float, seed: int, wpm: int = 150) -> Stage:
    """Two voices taking turns (2–4 sentences each, a pause between), room tone at −50 dBFS,
    a slate clap at 1 s, and a door or footsteps every 20–60 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = (pink(n, rng) * 10 ** (-50 / 20)).astype(np.float32)
    clap = rng.normal(0, 0.6, int(0.05 * RATE)) * np.exp(-np.arange(int(0.05 * RATE)) / 240)
    at = RATE
    out[at : at + len(clap)] += clap.astype(np.float32)
    spoken: list[str] = []
    sentences = iter(script(int(seconds / 60 * wpm * 1.2) + 20, seed))
    t = int(2.0 * RATE)
    turn = 0
    speech = 0
    while t < n - 3 * RATE:
        lines = [s for _, s in zip(range(int(rng.integers(2, 5))), sentences, strict=False)]
        if not lines:
            break
        voice = VOICES[turn % len(VOICES)]
        audio = _spoken(" ".join(lines), voice, wpm) * float(rng.uniform(0.3, 0.5))
        if t + len(audio) > n - RATE:
            break
        out[t : t + len(audio)] += audio
        spoken += lines
        speech += len(audio)
        t += len(audio) + int(rng.uniform(0.4, 1.5) * RATE)
        turn += 1
    t = int(rng.uniform(20, 60) * RATE)
    while t < n - RATE:  # doors and footsteps: low thuds
        length = int(0.12 * RATE)
        thud = rng.normal(0, 0.25, length) * np.exp(-np.arange(length) / (0.02 * RATE))
        sos = signal.butter(2, 300, "lowpass", fs=RATE, output="sos")
        out[t : t + length] += signal.sosfilt(sos, thud).astype(np.float32)
        t += int(rng.uniform(20, 60) * RATE)
    return Stage(out, " ".join(spoken), speech / RATE)


@dataclass(frozen=True)
class Mic:
    """How one microphone hears the stage (clock and offset are the camera's)."""

    name: str
    gain_db: float  # level, relative to the stage
    band: tuple[float, float]  # Hz, -3 dB
    rt60_s: float  # the room where it stands (0: dry)
    drr_db: float  # direct-to-reverberant ratio: close mics high, far ones low or negative
    snr_db: float  # its own hiss against what it hears
    hum: bool = False  # mains hum (50 Hz and harmonics), a camera with a bad cable
    rate: int = 48000  # the camera's sample rate
    drift_ppm: float = 0.0  # the camera's clock runs this fast


def impulse_response(mic: Mic, rng: np.random.Generator) -> np.ndarray:
    """Direct sound at t = 0 (amplitude 1), a few early reflections within 30 ms, then a
    diffuse tail decaying 60 dB in RT60, scaled to the direct-to-reverberant ratio."""
    length = max(int(mic.rt60_s * 1.2 * RATE), 1)
    ir = np.zeros(length, np.float32)
    ir[0] = 1.0
    if mic.rt60_s <= 0:
        return ir
    for _ in range(6):
        at = int(rng.uniform(0.003, 0.03) * RATE)
        if at < length:
            ir[at] += rng.uniform(0.2, 0.5) * rng.choice([-1, 1])
    start = int(0.01 * RATE)
    t = np.arange(length - start) / RATE
    tail = rng.normal(size=len(t)) * np.exp(-6.91 * t / mic.rt60_s)
    reverberant = np.sum(ir[1:] ** 2) + np.sum(tail**2)
    wanted = 10 ** (-mic.drr_db / 10)  # reverberant energy relative to the direct sound's 1
    ir[start:] += (tail * np.sqrt(wanted / max(reverberant, 1e-12))).astype(np.float32)
    return ir


def hear(stage_samples: np.ndarray, mic: Mic, seed: int) -> np.ndarray:
    """The stage as `mic` records it, at RATE (the camera resamples and drifts it)."""
    rng = np.random.default_rng(seed)
    heard = signal.oaconvolve(stage_samples, impulse_response(mic, rng))[: len(stage_samples)]
    lo, hi = mic.band
    sos = signal.butter(4, [lo, min(hi, RATE / 2 * 0.95)], "bandpass", fs=RATE, output="sos")
    heard = signal.sosfiltfilt(sos, heard)  # zero phase: colours, never shifts in time
    heard *= 10 ** (mic.gain_db / 20) / max(_rms(heard) / max(_rms(stage_samples), 1e-9), 1e-9)
    noise = pink(len(heard), rng) * _rms(heard) * 10 ** (-mic.snr_db / 20)
    heard = heard + noise
    if mic.hum:
        t = np.arange(len(heard)) / RATE
        heard += sum(0.01 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3))
    return np.clip(heard, -0.99, 0.99).astype(np.float32)


CAMERA_MIC = Mic("on-camera mic", -6, (120, 12000), 0.5, 3.0, 30.0)


def camera_audio(seconds: float, seed: int) -> tuple[np.ndarray, str]:
    """A camera's own audio track: the stage through its on-board mic, stereo (2, n), and
    every word spoken on the stage (the reference for word error rate)."""
    on_stage = stage(seconds, seed)
    heard = hear(on_stage.samples, CAMERA_MIC, seed)
    return np.stack([heard, heard]), on_stage.text


def aac_frames(stereo: np.ndarray, frame_size: int = 1024):
    """`stereo` (2, n) as fltp AudioFrames of `frame_size` samples with their pts."""
    for start in range(0, stereo.shape[1], frame_size):
        chunk = np.ascontiguousarray(stereo[:, start : start + frame_size], np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = start
        frame.time_base = Fraction(1, RATE)
        yield frame
