"""FTP: the control connection registers data connections; each transfer is one object
(`reassembly.ftp`). ``ftp-data`` is reached only through the expectation table."""

from __future__ import annotations

from appliance.model import Flow
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.ftp import FtpControlParser, FtpDataParser, looks_like_ftp


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A 220 banner and an FTP verb from the client (SMTP's EHLO says no)."""
    return looks_like_ftp(server, client)


def control(flow: Flow, ctx: ParserContext) -> FtpControlParser:
    return FtpControlParser(flow, ctx.expectations)


def data(flow: Flow, ctx: ParserContext) -> FtpDataParser:
    return FtpDataParser(flow, ctx.expected, ctx.factory, ctx.limits.body_limit)  # type: ignore[arg-type]


FTP = AppProtocol("ftp", control, probe=probe, ports=frozenset({21}), limits=Limits())
FTP_DATA = AppProtocol("ftp-data", data, limits=Limits(), limits_from="ftp")
