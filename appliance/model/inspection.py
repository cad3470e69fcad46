"""What a policy asks an inspector to do: the lists and parameters it runs with.

The policy engine (policies/) turns the validated policy file into these plain, frozen
specs; inspectors (inspectors/) compile them once per policy version. Neither side imports
the other: this module is the contract between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class KeywordSpec:
    """One keyword of a keyword group."""

    text: str
    weight: int = 1
    mode: str = "substring"
    """``substring`` (default), ``word`` (whole word for Latin scripts) or ``regex``."""


@dataclass(slots=True, frozen=True)
class ProximitySpec:
    """``a`` near ``b``: both within ``distance`` characters of each other (normalised text)."""

    a: str
    b: str
    distance: int
    weight: int = 1


@dataclass(slots=True, frozen=True)
class ListSpec:
    """A named list from the policy file, in the form inspectors consume.

    ``kind`` is ``keywords``, ``dataclass``, ``darkwords`` or ``fingerprints``. Keyword groups
    use ``keywords``/``proximity``/``exclusions``; data classes use ``pattern`` (a regex) and
    ``validator`` (``prc_id``, ``luhn``, ``cn_mobile``, ``email``, ``ipv4`` or empty).
    """

    name: str
    kind: str
    keywords: tuple[KeywordSpec, ...] = ()
    proximity: tuple[ProximitySpec, ...] = ()
    exclusions: tuple[str, ...] = ()
    pattern: str = ""
    validator: str = ""
    weight: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class InspectorConfig:
    """One inspector with the lists and parameters a profile gives it."""

    inspector: str
    lists: tuple[ListSpec, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
