"""IRC: DCC SEND offers register the file's connection, which ``irc-dcc`` turns into one
object (`reassembly.irc`)."""

from __future__ import annotations

from appliance.model import Flow
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.irc import DccDataParser, IrcParser, looks_like_irc


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """Registration from the client (NICK, USER, CAP LS, PASS)."""
    return looks_like_irc(server, client)


def control(flow: Flow, ctx: ParserContext) -> IrcParser:
    return IrcParser(flow, ctx.expectations)


def dcc(flow: Flow, ctx: ParserContext) -> DccDataParser:
    return DccDataParser(flow, ctx.expected, ctx.factory, ctx.limits.body_limit)  # type: ignore[arg-type]


IRC = AppProtocol("irc", control, probe=probe, ports=frozenset({6667}), limits=Limits())
IRC_DCC = AppProtocol("irc-dcc", dcc, limits=Limits(), limits_from="irc")
