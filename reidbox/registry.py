"""One registry class: components register under a lower-case name and are built by name."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional, TypeVar
from .errors import UnknownNameError

T = TypeVar("T")


class Registry:
    """Maps lower-case names to classes or factory functions.

    Usage::

        BACKBONES = Registry("backbone")

        @BACKBONES.register("resnet50")
        def build_resnet50(...): ...

        BACKBONES.get("resnet50")
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: Dict[str, Any] = {}

    def register(self, name: Optional[str] = None) -> Callable[[T], T]:
        """Register a class or function under ``name`` (default: its lower-cased name)."""

        def deco(obj: T) -> T:
            key = (name or obj.__name__).lower()  # type: ignore[attr-defined]
            if key in self._items and self._items[key] is not obj:
                raise UnknownNameError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> Any:
        key = str(name).lower()
        if key not in self._items:
            available = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {available}")
        return self._items[key]

    def names(self) -> list:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


DATASETS = Registry("dataset")
BACKBONES = Registry("backbone")
LOSSES = Registry("loss")
META_ARCHS = Registry("meta-architecture")
