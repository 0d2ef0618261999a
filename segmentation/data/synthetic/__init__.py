"""Writers of synthetic cases in the datasets' real folder layouts (no dataset can be downloaded here).

A writer is `write(out, *, cases, shape, seed) -> Path` (keywords) in a module of this
package, registered where it is defined with `@register("name", "description")`;
`seg synth NAME --out DIR` finds it by name. Adding a dataset's writer means adding a
module here: the modules are discovered, not listed.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

Writer = Callable[..., Path]


@dataclass(frozen=True)
class RegisteredWriter:
    """A writer and the one line `seg synth --help` says about it."""

    write: Writer
    description: str


_REGISTRY: dict[str, RegisteredWriter] = {}


def register(name: str, description: str) -> Callable[[Writer], Writer]:
    """Decorator: make the writer `seg synth NAME` (a name registered twice is a programming error)."""

    def decorate(write: Writer) -> Writer:
        if name in _REGISTRY and _REGISTRY[name].write is not write:
            raise ValueError(f"synthetic writer {name!r} is registered twice")
        _REGISTRY[name] = RegisteredWriter(write, description)
        return write

    return decorate


def writers() -> dict[str, RegisteredWriter]:
    """Every registered writer by name (importing each writer module of this package once)."""
    for module in pkgutil.iter_modules(__path__):
        import_module(f"{__name__}.{module.name}")
    return dict(sorted(_REGISTRY.items()))


def writer(name: str) -> Writer:
    """The writer registered as `name`."""
    return writers()[name].write


def write(name: str, out: Path | str, *, cases: int, shape: Sequence[int], seed: int) -> Path:
    """Write `cases` synthetic cases of kind `name` into `out`."""
    return writer(name)(Path(out), cases=cases, shape=tuple(shape), seed=seed)
