"""Inspector registry: the built-ins in one explicit tuple, third parties via entry points.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."tapsift.inspectors"]
    myinspector = "mypkg.module:MyInspector"

The target is a class (or factory) taking no arguments whose instances satisfy
``inspectors.base.Inspector``. Built-in names win over plug-ins; a plug-in that fails to load
is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points

from inspectors.base import Inspector
from inspectors.darkword import DarkwordInspector
from inspectors.dataclass import DataClassInspector
from inspectors.hiddenlink import HiddenLinkInspector
from inspectors.keyword import KeywordInspector
from inspectors.md5 import Md5Inspector
from inspectors.ml_image import MlImageInspector
from inspectors.ml_text import MlTextInspector
from inspectors.perceptual import PerceptualInspector

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tapsift.inspectors"

BUILTINS: tuple[type, ...] = (KeywordInspector, DataClassInspector, DarkwordInspector, HiddenLinkInspector,
                              Md5Inspector, PerceptualInspector, MlTextInspector, MlImageInspector)
"""Every built-in inspector, in the order they run for an object."""


def available(*, plugins: bool = True) -> dict[str, Callable[[], Inspector]]:
    """Name → factory for every inspector: the built-ins, then loadable plug-ins."""
    out: dict[str, Callable[[], Inspector]] = {cls.name: cls for cls in BUILTINS}
    if not plugins:
        return out
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in out:
            log.warning("inspector plug-in %s (%s) ignored: the name is taken", ep.name, ep.value)
            continue
        try:
            factory = ep.load()
        except Exception:
            log.exception("inspector plug-in %s (%s) failed to load", ep.name, ep.value)
            continue
        if not callable(factory):
            log.warning("inspector plug-in %s (%s) is not callable", ep.name, ep.value)
            continue
        out[ep.name] = factory
    return out


def create(name: str, *, plugins: bool = True) -> Inspector:
    """A new, unconfigured inspector called ``name`` (KeyError if there is none)."""
    factories = available(plugins=plugins)
    if name not in factories:
        raise KeyError(f"no inspector named {name!r} (have: {', '.join(sorted(factories))})")
    inspector = factories[name]()
    if not isinstance(inspector, Inspector):
        raise TypeError(f"inspector {name!r} does not implement the Inspector protocol")
    return inspector
