"""Fixtures of the output tests: a real rsyslogd on loopback (see ``rsyslog_harness``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.outputs.rsyslog_harness import RSYSLOGD, Rsyslog


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (Debian packages: rsyslog rsyslog-gnutls)")
    rs = Rsyslog(tmp_path / "rsyslog")
    rs.start()
    try:
        yield rs
    finally:
        rs.stop()
