"""Camera rig configuration (`rigs.yaml`, path in `DAM_RIGS`): which files belong to which
camera of which rig. No Dagster import."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..settings import rigs_file

ROLES = ("hero", "witness", "audio")


@dataclass(frozen=True)
class Camera:
    id: str
    role: str
    match: str  # glob relative to the rig root; ** spans folders
    creation_time_is_stop: bool = False  # some cameras stamp the end of the take

    def matches(self, relative: str) -> bool:
        return _glob_regex(self.match).match(relative) is not None


@dataclass(frozen=True)
class Rig:
    name: str
    root: Path
    cameras: tuple[Camera, ...]
    session_gap_s: float = 30.0  # segments closer than this belong to one session
    min_confidence: float = 0.3  # audio sync below this falls back to timecode/times

    def camera_for(self, path: str | Path, root: Path | None = None) -> Camera | None:
        base = (root or self.root).resolve()
        try:
            relative = Path(path).resolve().relative_to(base).as_posix()
        except ValueError:
            return None
        return next((c for c in self.cameras if c.matches(relative)), None)


@dataclass
class RigConfig:
    rigs: list[Rig] = field(default_factory=list)
    path: Path | None = None

    def by_name(self, name: str) -> Rig:
        for rig in self.rigs:
            if rig.name == name:
                return rig
        known = ", ".join(r.name for r in self.rigs) or "none"
        raise KeyError(f"no rig named {name!r} in {self.path} (known: {known})")

    def locate(self, path: str | Path) -> tuple[Rig, Camera] | None:
        """The rig and camera a file belongs to by where it lies, if any."""
        for rig in self.rigs:
            camera = rig.camera_for(path)
            if camera:
                return rig, camera
        return None


def _glob_regex(pattern: str) -> re.Pattern:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE)


def rigs_path() -> Path:
    return rigs_file()


# A rig's name becomes part of session ids and of export file names: letters, digits and
# `._-` only, so a name can never point a file somewhere else (`../../etc/x`).
RIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def load_rigs(path: str | Path | None = None) -> RigConfig:
    """Read rigs.yaml; a missing file means no rigs. Relative roots are relative to the file."""
    path = Path(path) if path else rigs_path()
    if not path.is_file():
        return RigConfig([], path)
    data = yaml.safe_load(path.read_text()) or {}
    rigs = []
    for entry in data.get("rigs") or []:
        root = Path(os.path.expandvars(str(entry["root"]))).expanduser()
        if not root.is_absolute():
            root = path.parent / root
        cameras = []
        for cam in entry.get("cameras") or []:
            role = str(cam.get("role", "witness")).lower()
            if role not in ROLES:
                raise ValueError(f"{path}: camera {cam.get('id')!r} role must be one of {ROLES}")
            cameras.append(
                Camera(
                    str(cam["id"]),
                    role,
                    str(cam["match"]),
                    bool(cam.get("creation_time_is_stop", False)),
                )
            )
        name = str(entry["name"])
        if not RIG_NAME.match(name) or ".." in name:
            raise ValueError(
                f"{path}: rig name {name!r} may hold only letters, digits, '.', '_' and '-'"
                " (it names session ids and export files)"
            )
        rigs.append(
            Rig(
                name,
                root.resolve(),
                tuple(cameras),
                float(entry.get("session_gap_s", 30.0)),
                float(entry.get("min_confidence", 0.3)),
            )
        )
    return RigConfig(rigs, path)
