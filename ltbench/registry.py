"""Name -> object registries for methods, datasets and backbones.

Entries register themselves with a decorator (``@METHODS.register("ldam_drw")``) next to their code, so a
new method is one new module. Lookups of unknown names fail with the list of known names and the closest
match, because a typo in a sweep file should cost seconds, not a cluster job.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ltbench.errors import ConfigError

T = TypeVar("T")


def describe(obj: Any) -> str:
    """First line of an object's docstring: the one-line description shown by ``ltbench list``."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class Registry(Generic[T]):
    """A typed name -> object mapping filled by ``register`` decorators.

    ``modules`` are imported on first lookup so that every decorator has run (the registry owns the
    knowledge of where its entries live; callers never import ``methods`` just for the side effect).
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._modules = modules
        self._loaded = False
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if not name.isidentifier() or name != name.lower():
            raise ValueError(f"{self.kind} name {name!r} must be snake_case")

        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if isinstance(obj, type):  # the registered name is the class's name: written once, never disagreeing
                own = obj.__dict__.get("name")
                if own not in (None, "", name):
                    raise ValueError(f"{self.kind} {name!r}: class {obj.__name__} says its name is {own!r}")
                obj.name = name
            self._entries[name] = obj
            return obj

        return deco

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self._modules:
                importlib.import_module(mod)

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            known = sorted(self._entries)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}")
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def describe_all(self) -> dict[str, str]:
        return {n: describe(self._entries[n]) for n in self.names()}


METHODS: Registry[Any] = Registry("method", ("ltbench.methods",))
DATASETS: Registry[Any] = Registry("dataset", ("ltbench.data.datasets",))
BACKBONES: Registry[Any] = Registry("backbone", ("ltbench.models.backbones",))
