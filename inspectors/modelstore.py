"""Where classifier models live, and the only way inspectors find them.

A policy names a model (``params.model``); whoever may edit the policy must not be able to make
the sensor read a file of their choosing. So a model is read only from the configured model
directory (setting ``inspection.model_dir``, default `DEFAULT_MODEL_DIR`): a relative name is
resolved inside it, an absolute path must lie inside it, ``..`` is refused, and the real path
(symlinks followed) must still be inside it. Model files are data, never code: see
`inspectors.ml_text` for the JSON format and ``tapsift ml convert`` for pickles of old versions.

The directory is process-wide: the command that starts the sensor calls `set_model_dir` with the
setting before any inspector is configured. Until then it is ``$TAPSIFT_MODEL_DIR`` if set (as
for the settings' default), else `DEFAULT_MODEL_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

DEFAULT_MODEL_DIR = "/var/lib/tapsift/models"
"""Also the default of ``inspection.model_dir`` and of ``tapsift ml train --model-dir``."""

ENV = "TAPSIFT_MODEL_DIR"


def default_model_dir() -> str:
    """``$TAPSIFT_MODEL_DIR``, else `DEFAULT_MODEL_DIR` (the administrator's environment, never
    something a policy can set)."""
    return os.environ.get(ENV) or DEFAULT_MODEL_DIR


_model_dir = Path(default_model_dir())


class ModelPathError(ValueError):
    """A model name that points outside the model directory, or at nothing usable."""


def set_model_dir(path: str | os.PathLike[str]) -> None:
    """Use ``path`` as the model directory of this process."""
    global _model_dir
    _model_dir = Path(path)


def model_dir() -> Path:
    """The model directory of this process."""
    return _model_dir


def name_problem(name: str, directory: str | os.PathLike[str] | None = None) -> str | None:
    """What is wrong with ``name`` as a model name, without touching the file system (the policy
    editor's check), or None. Relative names without ``..``; absolute paths inside the directory."""
    root = Path(directory) if directory is not None else _model_dir
    if not isinstance(name, str) or not name.strip():
        return "a model name is required (a file or folder in the model directory)"
    if "\x00" in name or "\\" in name:
        return f"model {name!r}: invalid characters"
    p = PurePosixPath(name)
    if ".." in p.parts:
        return f"model {name!r}: '..' is not allowed (models are read from {root} only)"
    if p.is_absolute():
        norm = PurePosixPath(os.path.normpath(name))
        base = PurePosixPath(os.path.abspath(root))
        if norm != base and base not in norm.parents:
            return f"model {name!r} is outside the model directory {root} (name a file inside it)"
    return None


def resolve_model(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """The real path of model ``name`` inside the model directory (it must exist).

    Raises `ModelPathError` for a name `name_problem` refuses, a missing file or directory, and a
    path whose real location (after symlinks) is outside the model directory."""
    root = Path(directory) if directory is not None else _model_dir
    problem = name_problem(name, root)
    if problem:
        raise ModelPathError(problem)
    try:
        real_root = root.resolve(strict=True)
    except OSError as exc:
        raise ModelPathError(f"model directory {root}: {exc.strerror or exc}") from None
    candidate = Path(name) if Path(name).is_absolute() else root / name
    try:
        real = candidate.resolve(strict=True)
    except OSError as exc:
        raise ModelPathError(f"model {name!r}: {exc.strerror or exc} (in {root})") from None
    if real != real_root and real_root not in real.parents:
        raise ModelPathError(f"model {name!r} leads outside the model directory {root} (to {real}); "
                             "refused")
    return real


__all__ = ["DEFAULT_MODEL_DIR", "ENV", "ModelPathError", "default_model_dir", "model_dir", "name_problem",
           "resolve_model", "set_model_dir"]
