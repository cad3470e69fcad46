"""HTTP/2 in clear text: frames and HPACK from the ``h2`` library, read passively.

Each test makes a real h2 client and server talk in memory (tests/reassembly/h2talk.py) and
feeds the recorded bytes, cut into segments, to the application layer with the default
protocol table: detection, framing, HPACK and the shared HTTP content assembler.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from appliance.model import Direction
from reassembly.applayer.h2 import PREFACE, probe
from tests.reassembly.applayer_run import Layer, gz
from tests.reassembly.factories import Stream, make_flow
from tests.reassembly.h2talk import C, H2Talk, S


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def frame_types(data: bytes) -> list[int]:
    """The frame types in a direction's bytes (after the preface, if any)."""
    pos, out = (len(PREFACE) if data.startswith(PREFACE) else 0), []
    while pos + 9 <= len(data):
        out.append(data[pos + 3])
        pos += 9 + int.from_bytes(data[pos:pos + 3], "big")
    return out


def _blob(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("piece", [0, 1, 7, 1448])
def test_requests_and_responses_become_objects(piece: int) -> None:
    t = H2Talk()
    pdf = b"%PDF-1.4\n" + _blob(70_000) + b"\n%%EOF\n"
    up = b"name,card\nalice,4111111111111111\n" * 300
    s1 = t.request("GET", "/docs/report.pdf?x=1")
    s3 = t.request("POST", "/upload/cards.csv", body=up, headers=[("content-type", "text/csv")])
    t.respond(s1, 200, pdf, headers=[("content-type", "application/pdf"),
                                      ("content-disposition", 'attachment; filename="Q3 report.pdf"')])
    t.respond(s3, 201, b"stored", headers=[("content-type", "text/plain")])
    run = Layer()
    run.run(t.chunks, piece=piece)
    got = run.by_md5()
    dl, ul, ok = got[md5(pdf)], got[md5(up)], got[md5(b"stored")]
    assert (dl.source, dl.method, dl.url, dl.host, dl.status) == ("http", "GET", "/docs/report.pdf?x=1",
                                                                 "files.example.org", 200)
    assert dl.filename == "Q3 report.pdf" and dl.declared_mime == "application/pdf" and dl.complete
    assert dl.direction is Direction.TO_CLIENT and dl.meta["http2_stream"] == "1" and dl.meta["http_version"] == "2"
    assert (ul.method, ul.url, ul.direction, ul.declared_mime) == ("POST", "/upload/cards.csv", Direction.TO_SERVER,
                                                                   "text/csv")
    assert ul.meta["http2_stream"] == "3" and ok.status == 201
    assert len(run.objects) == 3
    assert run.ended[0].app_proto == "http2"


def test_padding_priority_and_content_encoding() -> None:
    t = H2Talk()
    text = ("the quarterly numbers are confidential " * 2000).encode()
    sid = t.request("GET", "/notes.txt", headers=[("accept-encoding", "gzip")])
    t.c.prioritize(sid, weight=200)  # a PRIORITY frame
    t.pump()
    t.respond(sid, 200, gz(text), headers=[("content-type", "text/plain"), ("content-encoding", "gzip")],
              pad=37, frame=1000)
    assert 2 in frame_types(t.client_bytes())
    run = Layer()
    run.run(t.chunks, piece=100)
    (obj,) = run.objects
    assert obj.md5 == md5(text) and obj.size == len(text) and obj.complete


def test_continuation_and_header_table_size_change() -> None:
    t = H2Talk()
    t.c.update_settings({0x1: 256})  # the client shrinks the table the server's encoder may use
    t.s.update_settings({0x1: 8192})
    t.pump()
    big = [(f"x-filler-{i}", "v" * 200) for i in range(120)]  # ~27 KB of headers: CONTINUATION frames
    bodies = []
    for i in range(4):
        sid = t.request("GET", f"/f{i}.bin", headers=big if i == 1 else [("x-n", str(i))])
        body = _blob(5000 + i, seed=i)
        bodies.append(body)
        t.respond(sid, 200, body, headers=[("content-type", "application/octet-stream"), *(big if i == 2 else [])])
    assert 9 in frame_types(t.client_bytes()) and 9 in frame_types(t.server_bytes()), "no CONTINUATION sent"
    run = Layer()
    run.run(t.chunks, piece=333)
    got = run.by_md5()
    for i, body in enumerate(bodies):
        assert got[md5(body)].url == f"/f{i}.bin"
    assert "http2.hpack_error" not in run.ended[0].anomalies


def test_rst_stream_truncates_and_others_go_on() -> None:
    t = H2Talk()
    a = t.request("GET", "/cancelled.bin")
    b = t.request("GET", "/kept.bin")
    t.s.send_headers(a, [(b":status", b"200"), (b"content-length", b"100000")])
    t.s.send_data(a, b"A" * 5000)
    t.pump()
    t.c.reset_stream(a, error_code=8)
    t.pump()
    kept = _blob(3000)
    t.respond(b, 200, kept)
    t.s.close_connection(error_code=0)
    t.pump()
    run = Layer()
    run.run(t.chunks)
    got = run.by_md5()
    cut = got[md5(b"A" * 5000)]
    assert not cut.complete and "stream_reset" in cut.truncated
    assert got[md5(kept)].complete


def test_goaway_error_is_flagged() -> None:
    t = H2Talk()
    t.request("GET", "/x")
    t.s.close_connection(error_code=1)
    t.pump()
    run = Layer()
    run.run(t.chunks)
    assert "http2.goaway_error" in run.ended[0].anomalies


def test_server_push() -> None:
    t = H2Talk()
    sid = t.request("GET", "/index.html")
    pushed = t.s.get_next_available_stream_id()
    t.s.push_stream(sid, pushed, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"files.example.org"),
                                  (b":path", b"/style.css")])
    t.pump()
    css = b"body { color: #123456 }\n" * 50
    t.respond(pushed, 200, css, headers=[("content-type", "text/css")])
    t.respond(sid, 200, b"<html>hello</html>", headers=[("content-type", "text/html")])
    run = Layer()
    run.run(t.chunks)
    got = run.by_md5()
    assert got[md5(css)].url == "/style.css" and got[md5(css)].direction is Direction.TO_CLIENT
    assert "http2.server_push" in got[md5(css)].anomalies


def test_206_range_is_a_piece() -> None:
    t = H2Talk()
    data = _blob(10_000)
    sid = t.request("GET", "/big.iso", headers=[("range", "bytes=0-4999")])
    t.respond(sid, 206, data[:5000], headers=[("content-range", "bytes 0-4999/10000"), ("etag", '"v1"')])
    run = Layer()
    run.run(t.chunks)
    (obj,) = run.objects
    assert obj.kind == "range-piece" and "range" in obj.truncated


def test_prior_knowledge_is_not_http1() -> None:
    """The preface used to be taken for an HTTP/1 request (and the connection for one big body)."""
    t = H2Talk()
    sid = t.request("GET", "/a")
    t.respond(sid, 200, b"hello")
    for piece in (5, 11, 16, 0):
        run = Layer()
        run.run(t.chunks, piece=piece)
        assert run.ended[0].app_proto == "http2", piece
        assert [o.md5 for o in run.objects] == [md5(b"hello")]


def test_probe() -> None:
    flow = make_flow()
    assert probe(PREFACE[:3], b"", flow) is None
    assert probe(PREFACE[:5], b"", flow) is True
    assert probe(b"GET / HTTP/1.1\r\n", b"", flow) is False
    assert probe(b"", b"\x00\x00\x06\x04\x00\x00\x00\x00\x00", flow) is None


def test_missing_preface_midstream_is_flagged() -> None:
    t = H2Talk(preface=False)
    sid = t.request("GET", "/static.txt")
    t.respond(sid, 200, b"static text")
    flow = make_flow(sport=8080)
    flow.midstream = True
    run = Layer()
    run.run(t.chunks, flow=flow)
    assert run.ended[0].app_proto == "http2"
    assert "http2.missing_preface" in run.ended[0].anomalies
    # the server's HPACK context was seen from its start, so the response decodes
    assert [o.status for o in run.objects] == [200]


def test_gap_inside_data_keeps_framing() -> None:
    t = H2Talk()
    first, second = _blob(40_000, 3), _blob(2_000, 4)
    a = t.request("GET", "/one")
    t.respond(a, 200, first)
    b = t.request("GET", "/two")
    t.respond(b, 200, second)
    srv = t.server_bytes()
    cut = srv.index(first[10_000:10_100])
    st = Stream(make_flow(sport=8080))
    run = Layer()
    run.layer.feed_all(st.data(C, t.client_bytes()))
    run.layer.feed_all(st.data(S, srv[:cut]))
    run.layer.feed_all(st.gap(S, 100))
    run.layer.feed_all(st.data(S, srv[cut + 100:]))
    run.close(st)
    got = {o.url: o for o in run.objects}
    assert got["/one"].missing_bytes == 100 and not got["/one"].complete
    assert got["/two"].md5 == md5(second) and got["/two"].complete


def test_gap_in_frame_headers_stops_that_direction() -> None:
    t = H2Talk()
    a = t.request("GET", "/one")
    t.respond(a, 200, _blob(100))
    srv = t.server_bytes()
    st = Stream(make_flow(sport=8080))
    run = Layer()
    run.layer.feed_all(st.data(C, t.client_bytes()))
    run.layer.feed_all(st.data(S, srv[:5]))
    run.layer.feed_all(st.gap(S, 20))
    run.layer.feed_all(st.data(S, srv[25:]))
    run.close(st)
    assert "http2.gap" in run.ended[0].anomalies


def test_garbage_never_raises() -> None:
    rng = random.Random(5)
    for _ in range(200):
        run = Layer()
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        run.run([(C, PREFACE + junk), (S, bytes(rng.randrange(256) for _ in range(50)) + junk)],
                piece=rng.choice([0, 3, 17]))
        assert run.ended and "applayer.parser_error" not in run.ended[0].anomalies


def test_connection_cap() -> None:
    t = H2Talk()
    bodies = [_blob(3000, i) for i in range(4)]
    for i, body in enumerate(bodies):
        sid = t.request("GET", f"/{i}")
        t.respond(sid, 200, body)
    from reassembly.applayer.h2 import H2Limits

    run = Layer(limits={"http2": H2Limits(max_connection_bytes=7000)})
    run.run(t.chunks)
    complete = [o for o in run.objects if o.complete]
    assert len(complete) == 2 and any("connection_limit" in o.truncated for o in run.objects)
    assert "http2.connection_limit" in run.ended[0].anomalies


def test_h2c_upgrade_hands_off_from_http1() -> None:
    """``Upgrade: h2c``: the HTTP/1 request is stream 1, answered in HTTP/2 after the 101."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection

    c = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    s = H2Connection(H2Configuration(client_side=False, header_encoding=None))
    settings = c.initiate_upgrade_connection()
    req = (b"GET /upgraded/report.txt HTTP/1.1\r\nHost: files.example.org:8080\r\nConnection: Upgrade, HTTP2-Settings"
           b"\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")
    s.initiate_upgrade_connection(settings)
    resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n" + s.data_to_send()
    first = b"report line\n" * 500
    s.send_headers(1, [(b":status", b"200"), (b"content-type", b"text/plain")])
    s.send_data(1, first, end_stream=True)
    chunks = [(C, req), (S, resp), (C, c.data_to_send())]
    s.receive_data(chunks[-1][1])
    c.receive_data(resp[resp.index(b"\r\n\r\n") + 4:])
    chunks.append((S, s.data_to_send()))
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"files.example.org"),
                         (b":path", b"/second.bin")], end_stream=True)
    chunks.append((C, c.data_to_send()))
    s.receive_data(chunks[-1][1])
    second = _blob(20_000)
    s.send_headers(sid, [(b":status", b"200")])
    s.send_data(sid, second[:16_000])
    s.send_data(sid, second[16_000:], end_stream=True)
    chunks.append((S, s.data_to_send()))
    run = Layer()
    run.run(chunks, piece=500)
    got = run.by_md5()
    one = got[md5(first)]
    assert (one.method, one.url, one.host, one.status) == ("GET", "/upgraded/report.txt", "files.example.org", 200)
    assert got[md5(second)].url == "/second.bin" and got[md5(second)].meta["http2_stream"] == "3"
    assert "http2.response_without_request" not in run.ended[0].anomalies
