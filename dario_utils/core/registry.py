"""One registry per extension point: named entries, in the order they were added.

An entry is added where its code lives (``LOSSES.add("kl", ...)`` in
:mod:`dario_utils.training.losses`); every reader (config checks, training, the ablation) goes
through the registry, and an unknown name is one :class:`~dario_utils.core.config.ConfigError`
naming the config key and the choices.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from dario_utils.core.config import check_choice

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name; ``key`` is the config key that names one (``train.loss``)."""

    def __init__(self, key: str, what: str) -> None:
        self.key, self.what = key, what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Add ``entry`` as ``name``; a name added twice is a ValueError."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already in the registry of {self.key}")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry ``name``; :class:`~dario_utils.core.config.ConfigError` naming the key and the choices."""
        check_choice(self.key, name, tuple(self._entries), self.what)
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Every name, in the order added."""
        return tuple(self._entries)

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())
