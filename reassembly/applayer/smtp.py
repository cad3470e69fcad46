"""SMTP (ESMTP, CHUNKING, STARTTLS): messages and their MIME parts (`reassembly.smtp`)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.model import Flow
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.smtp import SmtpParser, looks_like_smtp


@dataclass(frozen=True, slots=True)
class SmtpLimits(Limits):
    max_line: int = 8192
    """Longest command/reply line kept; a longer DATA line is fed on in pieces."""


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A 220 greeting and EHLO/HELO/LHLO (or a banner naming an MTA)."""
    return looks_like_smtp(server, client)


def parser(flow: Flow, ctx: ParserContext) -> SmtpParser:
    lim = ctx.limits
    return SmtpParser(flow, ctx.factory, body_limit=lim.body_limit, max_line=lim.max_line)


SMTP = AppProtocol("smtp", parser, probe=probe, ports=frozenset({25, 587, 2525}), limits=SmtpLimits())
