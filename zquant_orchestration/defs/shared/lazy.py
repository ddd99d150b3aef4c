"""Module attributes built at their first use.

A definitions module builds its assets, sensors and schedules over this process's trading
days, report periods and stock list, which are read from the warehouse; importing the module
must not read them. Tests and tools that import an object by name (``from ...assets import
daily_bars``) get it through the module's ``__getattr__``, which builds it then."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def lazy_attributes(module: str, builders: Mapping[str, Callable[[], object]]) -> Callable[[str], object]:
    """A module ``__getattr__`` that answers each name of ``builders`` with its builder's result
    (builders cache what is costly), and any other name as Python does."""
    def __getattr__(name: str) -> object:
        if name in builders:
            return builders[name]()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return __getattr__
