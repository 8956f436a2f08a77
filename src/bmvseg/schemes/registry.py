"""The schemes, by name: the one list to extend when adding a scheme (one line).

Everything else asks a scheme's :class:`~bmvseg.schemes.base.Traits` through
:func:`scheme_traits`, so a new scheme is a module with one class (see
:mod:`bmvseg.schemes.base`) plus its line here.
"""

from __future__ import annotations

from bmvseg.errors import BmvsegError
from bmvseg.schemes.base import Scheme, Traits
from bmvseg.schemes.inter_bmv import InterBmv
from bmvseg.schemes.inter_flow import InterFlow
from bmvseg.schemes.per_frame import PerFrame
from bmvseg.schemes.prop_bmv import PropBmv
from bmvseg.schemes.prop_flow import PropFlow

_REGISTERED: tuple[type[Scheme], ...] = (
    PerFrame,
    PropFlow,
    PropBmv,
    InterBmv,
    InterFlow,
)
SCHEME_CLASSES: dict[str, type[Scheme]] = {cls.name: cls for cls in _REGISTERED}
SCHEMES = tuple(SCHEME_CLASSES)  # in the order the benchmark's tables list them


def scheme_class(name: str) -> type[Scheme]:
    """The registered scheme called ``name`` (a user error naming the choices if none is)."""
    if name not in SCHEME_CLASSES:
        raise BmvsegError(f"unknown scheme {name!r}; choose from {', '.join(SCHEMES)}")
    return SCHEME_CLASSES[name]


def scheme_traits(name: str) -> Traits:
    """What the scheme called ``name`` needs and does."""
    return scheme_class(name).traits


def reference_scheme() -> str:
    """The scheme every other is measured against: the one that runs the networks on every
    frame (no interval)."""
    (name,) = [s for s in SCHEMES if not scheme_traits(s).uses_interval]
    return name


def fusing_schemes() -> tuple[str, ...]:
    """The schemes that fuse two keyframes (for help text and the fusion table)."""
    return tuple(s for s in SCHEMES if scheme_traits(s).fuses)
