"""Inspector registry: the built-ins in one explicit table (imported on first use), third parties via entry points.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."tapsift.inspectors"]
    myinspector = "mypkg.module:MyInspector"

The target is a class (or factory) taking no arguments whose instances satisfy
``inspectors.base.Inspector``. Built-in names win over plug-ins; a plug-in that fails to load
is logged and skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from inspectors.base import Inspector

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tapsift.inspectors"

BUILTIN_PATHS: dict[str, str] = {
    "keyword": "inspectors.keyword:KeywordInspector",
    "dataclass": "inspectors.dataclass:DataClassInspector",
    "darkword": "inspectors.darkword:DarkwordInspector",
    "hiddenlink": "inspectors.hiddenlink:HiddenLinkInspector",
    "md5": "inspectors.md5:Md5Inspector",
    "perceptual": "inspectors.perceptual:PerceptualInspector",
    "ml_text": "inspectors.ml_text:MlTextInspector",
    "ml_image": "inspectors.ml_image:MlImageInspector",
}
"""Every built-in inspector (name → ``module:Class``), in the order they run for an object. A
module is imported when its inspector is first created: a policy without image inspectors
never imports numpy, Pillow or the fingerprint sets at start-up."""


def _load(path: str) -> type:
    mod, _, cls = path.partition(":")
    return getattr(importlib.import_module(mod), cls)  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    if name == "BUILTINS":  # the classes themselves (imports every built-in)
        return tuple(_load(p) for p in BUILTIN_PATHS.values())
    raise AttributeError(name)


def _builtin_factory(path: str) -> Callable[[], Inspector]:
    def make() -> Inspector:
        return _load(path)()  # type: ignore[no-any-return]

    make.__qualname__ = make.__name__ = path.rpartition(":")[2]
    return make


def available(*, plugins: bool = True) -> dict[str, Callable[[], Inspector]]:
    """Name → factory for every inspector: the built-ins, then loadable plug-ins."""
    out: dict[str, Callable[[], Inspector]] = {name: _builtin_factory(p) for name, p in BUILTIN_PATHS.items()}
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
    """A new, unconfigured inspector called ``name`` (KeyError if there is none). A built-in
    name never looks at the installed plug-ins."""
    if name in BUILTIN_PATHS:
        inspector = _load(BUILTIN_PATHS[name])()
    else:
        factories = available(plugins=plugins)
        if name not in factories:
            raise KeyError(f"no inspector named {name!r} (have: {', '.join(sorted(factories))})")
        inspector = factories[name]()
    if not isinstance(inspector, Inspector):
        raise TypeError(f"inspector {name!r} does not implement the Inspector protocol")
    return inspector
