"""SMB 1/2/3 file reads and writes (`reassembly.smb`)."""

from __future__ import annotations

from appliance.model import Flow
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.smb import SmbParser, looks_like_smb


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A NetBIOS session message carrying an SMB header (anywhere in the bytes mid-stream)."""
    return looks_like_smb(client, server, midstream=flow.midstream)


def parser(flow: Flow, ctx: ParserContext) -> SmbParser:
    return SmbParser(flow, ctx.factory, body_limit=ctx.limits.body_limit)


SMB = AppProtocol("smb", parser, probe=probe, ports=frozenset({139, 445}), limits=Limits())
