"""One way to wrap a model: building one reads nothing, `available()` says without loading
whether it can load here, `load()` loads it once (and raises `ModelUnavailable` with what to
install and where), `id` names the architecture and weights (it goes into versions and rows),
and the subclass adds what the model does (`embed_images`, `detect`, `transcribe`, …).

`Batcher` is how a run feeds a model inputs from all its files at once: they pile up and go
through in batches, so batches mix files, and a batch that fails fails only the files it held.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, Self, TypeVar


class ModelUnavailable(Exception):
    """The configured model cannot be loaded here: the message says what to install, where."""


class Model(ABC):
    def __init__(self, settings: Any, models_dir: Path):
        self.settings = settings
        self.models_dir = Path(models_dir)
        self._loaded: Any = None

    @functools.cached_property
    def id(self) -> str:
        return self._identify()

    @abstractmethod
    def _identify(self) -> str:
        """Architecture and weights, told from configuration (and file sizes), not by loading."""

    @abstractmethod
    def available(self) -> bool:
        """Whether `load()` can succeed here (the weights are in place, or can be fetched)."""

    @abstractmethod
    def _load(self) -> Any:
        """Load and return the model; raise ModelUnavailable when it cannot be."""

    def load(self) -> Self:
        if self._loaded is None:
            self._loaded = self._load()
        return self

    @property
    def loaded(self) -> Any:
        return self.load()._loaded


In, Owner, Out = TypeVar("In"), TypeVar("Owner"), TypeVar("Out")


class Batcher(Generic[In, Owner, Out]):
    """Inputs of many files, run through `run` `size` at a time as they pile up; each result is
    handed to `deliver` with the owner it came with. `error` keeps the last failure: the owners
    of that batch got nothing, the rest carry on."""

    def __init__(
        self,
        run: Callable[[list[In]], Sequence[Out]],
        size: int,
        deliver: Callable[[Owner, Out], None],
    ):
        self.run, self.size, self.deliver = run, max(1, size), deliver
        self.pending: list[tuple[In, Owner]] = []
        self.done = 0
        self.error: str | None = None

    def add(self, item: In, owner: Owner) -> None:
        self.pending.append((item, owner))
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []  # a failed batch is not retried by every add
        try:
            results = self.run([item for item, _ in batch])
        except Exception as exc:  # the files of this batch fail, not the one that filled it
            self.error = f"{type(exc).__name__}: {exc}"
            return
        for (_, owner), result in zip(batch, results, strict=True):
            self.deliver(owner, result)
        self.done += len(batch)
