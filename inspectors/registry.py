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
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from appliance.model.inspection import InspectorConfig
from inspectors.base import Inspector, InspectorConfigError

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
    "domains": "inspectors.domains:DomainInspector",
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


def build(config: InspectorConfig, *, plugins: bool = True) -> Inspector:
    """A configured inspector for ``config``, as the sensor builds it. Raises `InspectorConfigError`
    (also for an unknown name or a plug-in that breaks its protocol) saying why."""
    try:
        inspector = create(config.inspector, plugins=plugins)
    except (KeyError, TypeError) as exc:
        raise InspectorConfigError(str(exc).strip("'\"")) from None
    try:
        inspector.configure(config)
    except InspectorConfigError:
        raise
    except Exception as exc:  # a plug-in (or a library under it) failing its own way
        raise InspectorConfigError(f"{config.inspector}: {type(exc).__name__}: {exc}") from None
    return inspector


def _fingerprint_problem(spec: Any) -> str | None:
    """Why a fingerprint list's file cannot be used (missing, unreadable, nothing in it), or None."""
    from fingerprints import hashing as hx
    from fingerprints.sets import load_exact, load_perceptual

    opts = dict(spec.options)
    path = str(opts.get("path") or "")
    if not path:
        return None
    if not os.path.exists(path):
        return f"fingerprint list {spec.name!r}: {path}: no such file"
    if os.path.isdir(path) or not os.access(path, os.R_OK):
        return f"fingerprint list {spec.name!r}: {path}: not a readable file"
    algo = str(opts.get("algorithm", "md5"))
    try:
        fps: Any = load_exact(algo, path) if algo in hx.EXACT else load_perceptual(algo, path)
    except OSError as exc:
        return f"fingerprint list {spec.name!r}: cannot read {path}: {exc.strerror or exc}"
    except Exception as exc:
        return f"fingerprint list {spec.name!r}: {path} is not a fingerprint set ({exc})"
    if not len(fps):
        return f"fingerprint list {spec.name!r}: no {algo} fingerprints in {path}"
    return None


def _model_problem(name: Any) -> str | None:
    from inspectors.modelstore import ModelPathError, resolve_model

    try:
        resolve_model(str(name))
    except ModelPathError as exc:
        return str(exc)
    return None


def profile_problems(policy: Any, *, plugins: bool = True) -> dict[str, list[str]]:
    """Profile name → why its inspectors cannot run, as ``FILE:LINE:COLUMN: problem`` lines
    (none for a profile whose inspectors all build). Checks every file the policy names (model
    in the model directory, fingerprint sets that exist and parse) and configures every
    inspector entry as the sensor would. ``policy`` is a `policies.schema.Policy`."""
    list_problems: dict[str, str] = {}
    for name, spec in policy.lists.items():
        if spec.kind == "fingerprints":
            problem = _fingerprint_problem(spec)
            if problem:
                list_problems[name] = f"{policy.where(f'lists.{name}.path')}: {problem}"
    out: dict[str, list[str]] = {}
    for pname, profile in policy.profiles.items():
        found: list[str] = []
        for i, config in enumerate(profile.configs):
            entry = f"profiles.{pname}.inspect.{i}"
            bad_lists = [list_problems[s.name] for s in config.lists if s.name in list_problems]
            if bad_lists:
                found += [p for p in bad_lists if p not in found]
                continue
            if "model" in config.params:
                problem = _model_problem(config.params["model"])
                if problem:
                    found.append(f"{policy.where(entry + '.params.model')}: {config.inspector}: {problem}")
                    continue
            try:
                build(config, plugins=plugins)
            except InspectorConfigError as exc:
                found.append(f"{policy.where(entry)}: inspector {config.inspector!r} cannot run: {exc}")
        if found:
            out[pname] = found
    return out


def validate_inspectors(policy: Any, *, plugins: bool = True) -> list[str]:
    """Every reason the policy's inspectors cannot run, as ``FILE:LINE:COLUMN: problem`` lines
    (empty: all of them build). For ``tapsift policy check`` and ``tapsift read`` (exit 1 when
    not empty) and the sensor's start; see `profile_problems`."""
    seen: dict[str, None] = {}
    for problems in profile_problems(policy, plugins=plugins).values():
        for p in problems:
            seen.setdefault(p)
    unused = [f"{policy.where(f'lists.{n}.path')}: {p}" for n, s in policy.lists.items()
              if s.kind == "fingerprints" and (p := _fingerprint_problem(s))]
    for p in unused:
        seen.setdefault(p)
    return list(seen)
