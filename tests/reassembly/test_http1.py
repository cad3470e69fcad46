"""Http1Parser: framing, pairing, leniency, gaps; property tests on arbitrary input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reassembly.http1 import Http1Parser, parse_content_length
from tests.reassembly.factories import C, Collected, S, Stream, feed_all

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
REQ = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"


def run(req: bytes, resp: bytes, *, pieces: int | None = None, close: bool = True) -> Collected:
    s = Stream()
    p = Http1Parser(s.flow)
    cuts = (lambda n: list(range(pieces, n, pieces))) if pieces else (lambda n: None)
    evs = s.data(C, req, pieces=cuts(len(req))) if req else []
    evs += s.data(S, resp, pieces=cuts(len(resp))) if resp else []
    if close:
        evs += s.close(C) + s.close(S)
    return Collected(feed_all(p, evs))


def resp(headers: bytes, body: bytes = b"", status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + headers + b"\r\n" + body


def test_content_length_body_and_tx_fields():
    c = run(REQ, resp(b"Content-Length: 68\r\nContent-Type: text/plain\r\n", EICAR))
    tx = c.txs[0]
    assert (tx.method, tx.uri, tx.request_version, tx.host) == (b"GET", b"/a", b"HTTP/1.1", "example.com")
    assert (tx.status, tx.reason, tx.response_version) == (200, b"OK", b"HTTP/1.1")
    assert tx.response_header(b"content-type") == b"text/plain"
    assert c.resp(0) == EICAR and tx.response_body_len == 68
    assert c.ends[(0, 1)].complete and c.ends[(0, 0)].reason == "no_body"
    assert c.starts == [(0, 0), (0, 1)]


def test_chunked_with_extensions_and_trailers():
    body = b"5;name=val\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    c = run(REQ + REQ, resp(b"Transfer-Encoding: chunked\r\n", body) + resp(b"Content-Length: 2\r\n", b"ok"))
    assert c.resp(0) == b"hello world" and c.ends[(0, 1)].complete
    assert c.resp(1) == b"ok"
    assert "http.chunk_extension" in c.txs[0].anomalies


def test_chunked_hex_sizes_with_junk_lenient():
    body = b"\r\n 0f \r\nX5O!P%@AP[4\\PZX\r\nF,\r\n54(P^)7CC)7}$EI\r\n\tf x\r\nCAR-STANDARD-AN\r\n0f\r\r\n" \
        b"TIVIRUS-TEST-FI\r\n8\x0b\r\nLE!$H+H*\n00000000000000000000\n\n"
    c = run(REQ, resp(b"Transfer-Encoding: chunked\r\n", body))
    assert c.resp(0) == EICAR and c.ends[(0, 1)].complete


def test_close_delimited_body():
    c = run(REQ, resp(b"Connection: close\r\n", EICAR), pieces=7)
    assert c.resp(0) == EICAR and c.ends[(0, 1)].reason == "close"


def test_pipelining_three_requests_then_three_responses():
    reqs = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(3))
    resps = b"".join(resp(b"Content-Length: %d\r\n" % (i + 1), b"x" * (i + 1)) for i in range(3))
    c = run(reqs, resps, pieces=5)
    assert [t.uri for t in c.txs] == [b"/0", b"/1", b"/2"]
    assert [c.resp(i) for i in range(3)] == [b"x", b"xx", b"xxx"]
    assert [t.status for t in c.txs] == [200, 200, 200]


def test_head_response_has_no_body():
    req = b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n" + REQ
    c = run(req, resp(b"Content-Length: 1000\r\n") + resp(b"Content-Length: 3\r\n", b"abc"))
    assert c.resp(0) == b"" and c.ends[(0, 1)].reason == "no_body"
    assert c.resp(1) == b"abc"


def test_100_continue_and_multiple_1xx():
    req = b"POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nDATA"
    r = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
         b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
         + resp(b"Content-Length: 2\r\n", b"ok", b"201 Created"))
    c = run(req, r)
    assert len(c.txs) == 1 and c.txs[0].status == 201
    assert c.req(0) == b"DATA" and c.resp(0) == b"ok"


def test_204_and_304_have_no_body():
    c = run(REQ * 3, resp(b"", status=b"204 No Content") + resp(b"ETag: x\r\n", status=b"304 Not Modified")
            + resp(b"Content-Length: 1\r\n", b"z"))
    assert [t.status for t in c.txs] == [204, 304, 200]
    assert c.resp(2) == b"z" and c.resp(0) == c.resp(1) == b""


def test_bare_lf_and_obs_fold_and_odd_headers():
    r = (b"HTTP/1.1 200\nContent-Type: text/plain\nX-Long: a\n  b\nCONTENT-LENGTH : 68\n\n" + EICAR)
    c = run(REQ, r)
    tx = c.txs[0]
    assert c.resp(0) == EICAR
    assert tx.response_header(b"x-long") == b"a b"
    for code in ("http.bare_lf", "http.obs_fold", "http.space_before_colon", "http.no_reason_phrase"):
        assert code in tx.anomalies


def test_te_chunked_beats_content_length_and_its_prefix_is_an_alternate_reading():
    """RFC 9112 §6.3 and both browsers: chunked wins whatever the Content-Length says; the
    declared length is reported as a second, flagged reading (a padded file's real size)."""
    body = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    for order in (b"Transfer-Encoding: chunked\r\nContent-Length: 7\r\n",
                  b"Content-Length: 7\r\nTransfer-Encoding: chunked\r\n"):
        c = run(REQ, resp(order, body))
        assert c.resp(0) == b"helloworld" and c.ends[(0, 1)].complete
        assert "http.cl_te_conflict" in c.txs[0].anomalies
        assert c.alt[(0, 1)] == b"hellowo" and c.alt_ends[(0, 1)].complete


def test_te_that_is_not_really_chunked_falls_back():
    c = run(REQ, resp(b"Transfer-Encoding: x chunked\r\nContent-Length: 68\r\n", EICAR + b"junk"))
    assert c.resp(0) == EICAR and "http.chunked_not_chunked" in c.txs[0].anomalies


def test_multiple_content_length_first_wins():
    c = run(REQ, resp(b"Content-Length: 68\r\nContent-Length: 136\r\n", EICAR + b"X" * 68))
    assert c.resp(0) == EICAR and "http.multiple_content_length" in c.txs[0].anomalies


def test_parse_content_length():
    assert parse_content_length(b" 68 ") == 68
    assert parse_content_length(b"68;") == 68
    assert parse_content_length(b"34( 68)") == 68
    assert parse_content_length(b"abc") is None


def test_gap_inside_content_length_body_is_counted():
    s = Stream()
    p = Http1Parser(s.flow)
    head = resp(b"Content-Length: 30\r\n")
    evs = s.data(C, REQ) + s.data(S, head + b"a" * 10) + s.gap(S, 10) + s.data(S, b"b" * 10)
    evs += s.data(C, REQ) + s.data(S, resp(b"Content-Length: 2\r\n", b"ok"))
    c = Collected(feed_all(p, evs))
    assert c.resp(0) == b"a" * 10 + b"b" * 10 and c.gaps[(0, 1)] == 10
    assert c.ends[(0, 1)].complete and c.resp(1) == b"ok"


def test_gap_in_chunked_then_resync_on_next_response():
    s = Stream()
    p = Http1Parser(s.flow)
    evs = s.data(C, REQ + REQ) + s.data(S, resp(b"Transfer-Encoding: chunked\r\n", b"10\r\n0123"))
    evs += s.gap(S, 100) + s.data(S, b"tail of something\r\n" + resp(b"Content-Length: 2\r\n", b"ok"))
    c = Collected(feed_all(p, evs + s.close(S)))
    assert not c.ends[(0, 1)].complete and c.resp(0) == b"0123"
    assert c.resp(1) == b"ok" and c.txs[1].status == 200


def test_gap_in_request_headers_then_resync():
    s = Stream()
    p = Http1Parser(s.flow)
    evs = s.data(C, b"GET /lost HTTP/1.1\r\nHo") + s.gap(C, 50)
    evs += s.data(C, b"junk\r\nGET /b HTTP/1.1\r\n\r\n")
    c = Collected(feed_all(p, evs))
    assert [t.uri for t in c.txs] == [b"/b"]


def test_connect_tunnel_stops_parsing():
    req = b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01garbage"
    c = run(req, resp(b"", status=b"200 Connection established") + b"\x16\x03\x03more tls")
    assert len(c.txs) == 1 and "http.tunnel" in c.txs[0].anomalies and c.resp(0) == b""


def test_header_section_capped():
    s = Stream()
    p = Http1Parser(s.flow, max_header_bytes=1024)
    evs = s.data(C, REQ) + s.data(S, b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 5000)
    c = Collected(feed_all(p, evs))
    assert "http.header_too_long" in p.anomalies and not c.body


def test_http09_response_and_leading_junk():
    c = run(REQ, b"just a body without status line\n" * 50)
    assert c.resp(0).startswith(b"just a body") and "http.response_http09" in c.txs[0].anomalies
    c = run(REQ, b"\r\n\r\nSIP/2.0 200 ok\r\nHTTP/1.1 200 ok\r\nContent-Length: 2\r\n\r\nok")
    assert c.resp(0) == b"ok"


def test_body_limit():
    s = Stream()
    p = Http1Parser(s.flow, body_limit=10)
    c = Collected(feed_all(p, s.data(C, REQ) + s.data(S, resp(b"Content-Length: 100\r\n", b"x" * 100))))
    assert c.resp(0) == b"x" * 10 and c.ends[(0, 1)].reason == "body_limit"


VALID = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n" + REQ,
    resp(b"Content-Length: 5\r\n", b"hello")
    + resp(b"Transfer-Encoding: chunked\r\n", b"4\r\nwxyz\r\n0\r\n\r\n"),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300), max_size=12),
       st.lists(st.integers(min_value=1, max_value=300), max_size=12))
def test_random_splits_give_same_bodies(cuts_c, cuts_s):
    s = Stream()
    p = Http1Parser(s.flow)
    evs = s.data(C, VALID[0], pieces=cuts_c) + s.data(S, VALID[1], pieces=cuts_s) + s.close(C) + s.close(S)
    c = Collected(feed_all(p, evs))
    assert c.req(0) == b"abc" and c.resp(0) == b"hello" and c.resp(1) == b"wxyz"
    assert all(e.complete for e in c.ends.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=64), st.sampled_from(
    [b"HTTP/1.1 200 OK\r\n", b"GET / HTTP/1.1\r\n", b"Transfer-Encoding: chunked\r\n", b"\r\n", b"\n",
     b"Content-Length: 5\r\n", b"0\r\n\r\n", b"ff\r\n", b" \r\n", b"HTTP/1.1 100 x\r\n\r\n"]))), max_size=30),
       st.lists(st.tuples(st.booleans(), st.integers(1, 5000)), max_size=3))
def test_never_raises_on_arbitrary_bytes(chunks, gaps):
    s = Stream()
    p = Http1Parser(s.flow)
    events = []
    for k, (to_client, data) in enumerate(chunks):
        events += s.data(S if to_client else C, data)
        if k < len(gaps) and gaps[k][0]:
            events += s.gap(S if to_client else C, gaps[k][1])
    events += s.close(C) + s.close(S)
    out = feed_all(p, events)
    assert "http.parser_error" not in p.anomalies
    for tx in {id(e.tx): e.tx for e in out}.values():
        assert "http.parser_error" not in tx.anomalies
    Collected(out)  # at most one end per (tx, direction)


CONNECT = b"CONNECT inner.example:80 HTTP/1.1\r\nHost: inner.example:80\r\n\r\n"
INNER = b"GET /in HTTP/1.1\r\nHost: inner.example\r\n\r\n"


def _tunnel(events: list) -> tuple[Collected, list]:
    p = Http1Parser(events[0].flow)
    c = Collected(feed_all(p, events))
    return c, [p.handoff] if p.handoff is not None else []


def test_connect_holds_client_bytes_until_the_answer_and_reports_the_tunnel():
    """The client's bytes after CONNECT are not parsed as HTTP; the 2xx reports where the
    tunnel starts in each direction and the bytes already received past it."""
    s = Stream()
    evs = s.data(C, CONNECT + INNER[:10]) + s.data(C, INNER[10:])
    evs += s.data(S, b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK\r\n", pieces=[20])
    c, seen = _tunnel(evs)
    assert [t.uri for t in c.txs] == [b"inner.example:80"] and "http.tunnel" in c.txs[0].anomalies
    (t,) = seen
    assert t.protocol is None and t.target == "inner.example:80"
    assert t.at == (len(CONNECT), len(b"HTTP/1.1 200 Connection established\r\n\r\n"))
    assert t.replay == (INNER, b"HTTP/1.1 200 OK\r\n")


def test_refused_connect_parses_the_held_bytes_as_http():
    s = Stream()
    evs = s.data(C, CONNECT + REQ) + s.data(S, resp(b"Content-Length: 0\r\n", status=b"407 Auth")
                                               + resp(b"Content-Length: 2\r\n", b"ok"))
    c, seen = _tunnel(evs + s.close(C) + s.close(S))
    assert not seen and [t.uri for t in c.txs] == [b"inner.example:80", b"/a"] and c.resp(1) == b"ok"


def test_connect_without_answer_gives_the_held_bytes_back_to_http():
    s = Stream()
    p = Http1Parser(s.flow, max_header_bytes=1024)
    body = b"x" * 2000
    post = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n" + body
    c = Collected(feed_all(p, s.data(C, CONNECT) + s.data(C, post) + s.close(C)))
    assert [t.uri for t in c.txs] == [b"inner.example:80", b"/up"] and c.req(1) == body
    assert "http.tunnel_reply_missing" in c.txs[0].anomalies
    s2 = Stream()  # the client closes first: what it held is HTTP too
    c2 = Collected(feed_all(Http1Parser(s2.flow), s2.data(C, CONNECT + REQ) + s2.close(C)))
    assert [t.uri for t in c2.txs] == [b"inner.example:80", b"/a"]


def test_gap_while_waiting_and_upgrade_names_the_protocol():
    s = Stream()
    evs = s.data(C, CONNECT + b"abc") + s.gap(C, 10) + s.data(S, b"HTTP/1.1 200 OK\r\n\r\n")
    _, seen = _tunnel(evs)
    assert seen[0].replay == (b"", b"")  # the held bytes cannot start a tunnel past a hole
    s2 = Stream()
    up = b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n"
    _, seen2 = _tunnel(s2.data(C, up) + s2.data(S, b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello"))
    assert seen2[0].protocol == "websocket" and seen2[0].replay == (b"", b"\x81\x05hello")


def _lost_head(cut: int, tail: bytes = b"", pieces: list[int] | None = None) -> tuple[Collected, bytes]:
    """A response whose first ``cut`` bytes (its head and the start of its body) a hole took."""
    body = bytes(range(256)) * 40
    r = resp(b"Content-Length: %d\r\nContent-Type: image/jpeg\r\n" % len(body), body)
    s = Stream()
    p = Http1Parser(s.flow)
    evs = s.data(C, REQ + REQ) + s.gap(S, cut) + s.data(S, r[cut:] + tail, pieces=pieces) + s.close(C) + s.close(S)
    return Collected(feed_all(p, evs)), r


def test_response_head_lost_in_a_gap_keeps_the_rest_of_the_body():
    """The hole took the status line and headers: the rest is the oldest request's body,
    flagged, with the hole as missing bytes; the next response is parsed as usual."""
    nxt = resp(b"Content-Length: 2\r\n", b"ok")
    for pieces in (None, [5, 13, 14, 300, 2000]):
        c, r = _lost_head(200, nxt, pieces)
        assert c.resp(0) == r[200:] and c.gaps[(0, 1)] == 200
        assert not c.ends[(0, 1)].complete and c.ends[(0, 1)].reason == "head_lost"
        assert "http.response_head_lost" in c.txs[0].anomalies and c.txs[0].uri == b"/a"
        assert c.resp(1) == b"ok" and c.ends[(1, 1)].complete


def test_hole_that_took_a_whole_response_makes_no_object():
    s = Stream()
    p = Http1Parser(s.flow)
    evs = s.data(C, REQ + REQ) + s.gap(S, 500) + s.data(S, resp(b"Content-Length: 2\r\n", b"ok")) + s.close(S)
    c = Collected(feed_all(p, evs))
    assert (0, 1) not in c.body and "http.response_lost_in_gap" in c.txs[0].anomalies
    assert c.resp(1) == b"ok" and c.txs[1].status == 200


def test_hole_from_a_body_into_the_next_response_head():
    s = Stream()
    p = Http1Parser(s.flow)
    second = bytes(range(200, 256)) * 30
    r2 = resp(b"Content-Length: %d\r\n" % len(second), second)
    evs = s.data(C, REQ + REQ) + s.data(S, resp(b"Content-Length: 100\r\n", b"a" * 40))
    evs += s.gap(S, 60 + 50) + s.data(S, r2[50:]) + s.close(S)
    c = Collected(feed_all(p, evs))
    assert c.resp(0) == b"a" * 40 and c.gaps[(0, 1)] == 60
    assert c.resp(1) == r2[50:] and c.gaps[(1, 1)] == 50 and c.ends[(1, 1)].reason == "head_lost"
