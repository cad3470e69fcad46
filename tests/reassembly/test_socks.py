"""SOCKS4/4a/5 through the application layer: generated handshakes, the proxied HTTP inside,
refusals and evasions. The handshakes are built from RFC 1928/1929 and the SOCKS4(a) notes."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import AppEvent, ContentObject
from reassembly.applayer.socks import probe
from reassembly.applayer.stage import AppLayer
from reassembly.applayer.table import PROTOCOLS
from reassembly.objects import ObjectFactory
from tests.reassembly.factories import C, S, Stream, make_flow

PAGE = b"<html>" + b"proxied " * 300 + b"</html>"
REQ = b"GET /inner/page.html HTTP/1.1\r\nHost: inner.example\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(PAGE) + PAGE


def socks5(target: tuple[str, str | bytes, int], *, auth: tuple[bytes, bytes] | None = None,
           methods: bytes = b"\x00\x02", cmd: int = 1, rep: int = 0) -> tuple[list[bytes], list[bytes]]:
    """The client's and the proxy's handshake messages, in order."""
    kind, addr, port = target
    if kind == "ipv4":
        a = b"\x01" + ipaddress.IPv4Address(addr).packed
    elif kind == "ipv6":
        a = b"\x04" + ipaddress.IPv6Address(addr).packed
    else:
        a = b"\x03" + bytes([len(addr)]) + addr  # type: ignore[operator]
    client = [b"\x05" + bytes([len(methods)]) + methods]
    server = [b"\x05" + (b"\x02" if auth else b"\x00")]
    if auth:
        user, pw = auth
        client.append(b"\x01" + bytes([len(user)]) + user + bytes([len(pw)]) + pw)
        server.append(b"\x01\x00")
    client.append(b"\x05" + bytes([cmd]) + b"\x00" + a + struct.pack("!H", port))
    server.append(b"\x05" + bytes([rep]) + b"\x00\x01" + bytes([192, 0, 2, 9]) + struct.pack("!H", 40000))
    if cmd == 2:
        server.append(b"\x05\x00\x00\x01" + bytes([198, 51, 100, 7]) + struct.pack("!H", 5555))
    return client, server


def socks4(ip: str, port: int, user: bytes = b"alice", host: bytes | None = None,
           status: int = 90) -> tuple[list[bytes], list[bytes]]:
    dst = bytes([0, 0, 0, 7]) if host is not None else ipaddress.IPv4Address(ip).packed
    req = b"\x04\x01" + struct.pack("!H", port) + dst + user + b"\0" + (host + b"\0" if host is not None else b"")
    return [req], [bytes([0, status]) + b"\0" * 6]


def run(client: list[bytes], server: list[bytes], *, optimistic: bool = False, cuts: list[int] | None = None,
        sport: int = 1080) -> tuple[list[ContentObject], list[AppEvent], Stream]:
    """Feed the handshake (answering each message, or all client bytes first when
    ``optimistic``), then the proxied HTTP exchange, through an AppLayer with the real table."""
    objs: list[ContentObject] = []
    events: list[AppEvent] = []
    layer = AppLayer(PROTOCOLS, ObjectFactory(keep_bytes=1 << 20), emit=objs.extend, on_event=events.append)
    s = Stream(make_flow(uid="Csocks", sport=sport))
    evs = []
    if optimistic:
        evs += s.data(C, b"".join(client) + REQ, pieces=cuts)
        evs += s.data(S, b"".join(server) + RESP, pieces=cuts)
    else:
        for k, msg in enumerate(client):
            evs += s.data(C, msg, pieces=cuts)
            if k < len(server):
                evs += s.data(S, server[k], pieces=cuts)
        for msg in server[len(client):]:
            evs += s.data(S, msg)
        evs += s.data(C, REQ, pieces=cuts) + s.data(S, RESP, pieces=cuts)
    layer.feed_all(evs + s.close(C) + s.close(S))
    return objs, events, s


TARGETS = st.one_of(
    st.tuples(st.just("ipv4"), st.ip_addresses(v=4).map(str), st.integers(1, 65535)),
    st.tuples(st.just("ipv6"), st.ip_addresses(v=6).map(str), st.integers(1, 65535)),
    st.tuples(st.just("domain"), st.from_regex(rb"\A[a-z0-9]{1,20}(\.[a-z0-9]{1,12}){0,3}\Z"), st.integers(1, 65535)),
)


@settings(max_examples=50, deadline=None)
@given(TARGETS, st.one_of(st.none(), st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=40))),
       st.booleans(), st.lists(st.integers(1, 40), max_size=4), st.sampled_from([1080, 80, 443, 31337]))
def test_socks5_tunnels_http_and_names_the_target(target, auth, optimistic, cuts, port) -> None:
    client, server = socks5(target, auth=auth)
    objs, events, s = run(client, server, optimistic=optimistic, cuts=cuts, sport=port)
    (page,) = [o for o in objs if o.data == PAGE]
    kind, addr, tport = target
    host = addr.decode() if isinstance(addr, bytes) else addr
    shown = f"[{ipaddress.IPv6Address(host)}]" if kind == "ipv6" else host
    assert page.meta["connect_host"] == f"{shown}:{tport}" and page.url == "/inner/page.html"
    assert page.host == "inner.example" and s.flow.app_proto == "http"
    (ev,) = [e for e in events if e.event_type == "socks"]
    assert ev.fields["status"] == "granted" and ev.fields["command"] == "connect"
    assert ev.fields["auth"] == ("username_password" if auth else "none")
    assert ev.fields.get("user", "") == (auth[0].decode("latin-1") if auth else "")
    assert "password" not in ev.fields  # the credentials' secret half is never reported
    if auth and auth[1] and auth[1] != auth[0]:
        assert auth[1].decode("latin-1") not in ev.fields.values()


@settings(max_examples=40, deadline=None)
@given(st.ip_addresses(v=4).map(str).filter(lambda ip: not ip.startswith("0.0.0.")),  # 0.0.0.x means 4a
       st.integers(1, 65535), st.binary(max_size=30).filter(lambda b: b"\0" not in b)
       .map(lambda b: bytes(c % 95 + 32 for c in b)), st.booleans(), st.booleans())
def test_socks4_and_4a_tunnel_http(ip, port, user, socks4a, optimistic) -> None:
    host = b"files.example.org" if socks4a else None
    objs, events, _ = run(*socks4(ip, port, user, host), optimistic=optimistic)
    (page,) = [o for o in objs if o.data == PAGE]
    assert page.meta["connect_host"] == f"{'files.example.org' if socks4a else ip}:{port}"
    (ev,) = [e for e in events if e.event_type == "socks"]
    assert ev.fields["version"] == 4 and ev.fields["user"] == user.decode()


def test_bind_waits_for_the_second_reply() -> None:
    objs, events, _ = run(*socks5(("domain", b"ftp.example", 21), cmd=2))
    assert [o.data for o in objs if o.data == PAGE] == [PAGE]
    assert events[-1].fields["command"] == "bind"


def test_refused_handshakes_look_no_further() -> None:
    for client, server, status in (
        (*socks5(("ipv4", "10.0.0.1", 80), rep=5), "refused"),
        (*socks4("10.0.0.1", 80, status=91), "rejected"),
        ([b"\x05\x01\x01"], [b"\x05\xff"], "no_acceptable_method"),
    ):
        objs, events, s = run(client, server)
        assert not [o for o in objs if o.data == PAGE] and s.flow.app_proto == "socks"
        assert [e.fields["status"] for e in events if e.event_type == "socks"] == [status]


def test_probe_needs_a_well_formed_greeting() -> None:
    flow = make_flow()
    assert probe(b"\x05\x01\x00", b"\x05\x00", flow) is True
    assert probe(b"\x05\x01\x00", b"", flow) is None
    assert probe(b"\x05\x01\x00", b"\x05\x02", flow) is False  # a method the client did not offer
    assert probe(b"\x05\x02\x00\x00", b"", flow) is False  # the same method twice
    assert probe(b"\x05\x01\x42", b"", flow) is False  # an unassigned method
    assert probe(b"\x04\x01\x00\x50\x0a\x00\x00\x01bob\x00", b"", flow) is True
    assert probe(b"\x04\x01\x00\x50\x0a\x00\x00\x01b\x01b\x00", b"", flow) is False
    assert probe(b"GET / HTTP/1.1\r\n", b"", flow) is False


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.binary(max_size=80))
def test_arbitrary_bytes_never_raise(client: bytes, server: bytes) -> None:
    for c in (client, b"\x05" + client, b"\x04\x01" + client):
        probe(c, server, make_flow())
        run([c], [server])
