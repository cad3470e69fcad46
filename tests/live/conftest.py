"""Fixtures of the live-capture tests: root, namespaces, generated captures."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.netns import VethPair, netns_unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def live_ok() -> None:
    why = netns_unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture
def pair(live_ok: None) -> Iterator[VethPair]:
    with VethPair() as p:
        yield p


@pytest.fixture(scope="session")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 MB generated HTTP capture (interleaved flows, impairments, uploads, TLS and DNS noise)."""
    out = tmp_path_factory.mktemp("live") / "work20.pcap"
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_workload.py"), str(out), "--mb", "20", "--seed", "7"],
                   check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden cases' captures (tests/pcaps/cases.py)."""
    out = tmp_path_factory.mktemp("gold")
    subprocess.run([sys.executable, "-m", "tests.pcaps.cases", str(out)], check=True, capture_output=True,
                   timeout=300, cwd=ROOT)
    return out
