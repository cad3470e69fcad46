"""IRC DCC SEND: offers on the IRC connection tie the file connection to its name."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from appliance.model import Direction, Flow, FlowKey
from reassembly.ftp import FtpExpectations
from reassembly.irc import DccContext, DccDataParser, IrcParser, looks_like_irc
from reassembly.objects import ObjectFactory
from tests.reassembly.factories import Stream, make_flow

C2S, S2C = Direction.TO_SERVER, Direction.TO_CLIENT


def test_detection() -> None:
    assert looks_like_irc(b"", b"NICK alice\r\nUSER alice 0 * :A\r\n") is True
    assert looks_like_irc(b"", b"CAP LS 302\r\n") is True
    assert looks_like_irc(b"", b"GET / HTTP/1.1\r\n") is False
    assert looks_like_irc(b"", b"NI") is None
    assert looks_like_irc(b":server NOTICE", b"") is None


def _offer_flow(text: bytes, pieces: list[int]) -> tuple[FtpExpectations, IrcParser]:
    exp = FtpExpectations()
    s = Stream(make_flow("Circ", 50000, 6667))
    p = IrcParser(s.flow, exp)
    for ev in s.data(C2S, b"NICK alice\r\nUSER alice 0 * :Alice\r\n"):
        p.feed(ev)
    for ev in s.data(C2S, text, pieces=pieces):
        p.feed(ev)
    return exp, p


def test_offer_registers_the_data_connection_and_names_the_file() -> None:
    offer = b"PRIVMSG bob :\x01DCC SEND \"q3 plan.pdf\" 167772167 40123 300000\x01\r\n"
    exp, p = _offer_flow(offer, [5, 17, 30])  # the line arrives in pieces
    assert p.offers == 1
    # the receiver connects to 10.0.0.7:40123 and the offerer streams the file
    cip, sip = bytes([10, 0, 0, 9]), bytes([10, 0, 0, 7])
    data_flow = Flow("Cdata", 2, FlowKey.of(cip, 51000, sip, 40123, 6), cip, 51000, sip, 40123, "", 0)
    ctx = exp.match(data_flow)
    assert isinstance(ctx, DccContext) and ctx.filename == "q3 plan.pdf" and ctx.size == 300000
    body = b"%PDF-1.4\n" + bytes(range(256)) * 1000
    s = Stream(data_flow)
    parser = DccDataParser(data_flow, ctx, ObjectFactory(), body_limit=0)
    for ev in s.data(S2C, body, pieces=[1000, 5000, 90000]):
        parser.feed(ev)
    for i in range(0, len(body), 4096):  # the receiver's acknowledgements
        for ev in s.data(C2S, (i + 4096).to_bytes(4, "big")):
            parser.feed(ev)
    (obj,) = parser.close(data_flow, 1)
    assert obj.source == "irc-dcc" and obj.filename == "q3 plan.pdf"
    assert obj.md5 == hashlib.md5(body).hexdigest() and obj.direction is C2S  # offered by the IRC client
    assert obj.truncated == ("short",)  # 256,009 of the 300,000 bytes announced


def test_ipv6_offer() -> None:
    exp, p = _offer_flow(b"PRIVMSG bob :\x01DCC SEND a.txt 2001:db8::7 4000 10\x01\r\n", [])
    assert p.offers == 1 and len(exp) == 1


@given(st.binary(max_size=2000), st.lists(st.integers(1, 1999), max_size=8))
def test_never_raises(data: bytes, cuts: list[int]) -> None:
    _offer_flow(data, cuts)
