"""Shared sandbox for the extraction tests (started once: forkserver workers)."""

from __future__ import annotations

import pytest

from inspectors.extract.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    sb = Sandbox(workers=2, memory_bytes=768 << 20, cpu_seconds=20)
    yield sb
    sb.close()


@pytest.fixture(scope="session")
def factory():
    from reassembly.objects import ObjectFactory

    return ObjectFactory()
