"""WebSocket messages after an HTTP/1 upgrade, with frames made by ``wsproto`` (a real peer)."""

from __future__ import annotations

import hashlib
import random

import pytest

from appliance.model import Direction
from reassembly.applayer.websocket import WebSocketLimits, accept_key, deflate_params
from tests.reassembly.applayer_run import Layer
from tests.reassembly.factories import Stream, make_flow
from tests.reassembly.wstalk import C, S, WsTalk


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _no_coalesce() -> Layer:
    return Layer(limits={"websocket": WebSocketLimits(coalesce_max_message=0)})


@pytest.mark.parametrize("piece", [0, 1, 5, 1448])
def test_text_and_binary_messages(piece: int) -> None:
    t = WsTalk()
    doc = random.Random(1).randbytes(50_000)
    text = "transfer the confidential roadmap to the usual address " * 40
    t.send(C, text)
    t.send(S, doc)
    t.send(C, "bye")
    run = Layer()
    run.run(t.chunks, piece=piece)
    got = run.by_md5()
    m = got[md5(text.encode())]
    assert (m.source, m.kind, m.direction, m.declared_mime, m.tx_id) == ("websocket", "message", Direction.TO_SERVER,
                                                                      "text/plain", 1)
    assert (m.url, m.host) == ("/socket?room=7", "chat.example.org")
    assert m.meta["websocket_opcode"] == "text" and m.meta["websocket_accept"] == "valid"
    b = got[md5(doc)]
    assert b.direction is Direction.TO_CLIENT and b.meta["websocket_opcode"] == "binary" and b.tx_id == 2
    small = got[md5(b"bye")]
    assert small.kind == "messages" and small.meta["websocket_messages"] == "3"
    assert run.ended[0].app_proto == "websocket"


def test_fragmented_with_interleaved_ping() -> None:
    t = WsTalk()
    parts = ["first part, ", "second part, ", "last part"]
    t.send(C, parts[0], finished=False)
    t.ping(C)
    t.send(C, parts[1], finished=False)
    t.ping(S)
    t.send(C, parts[2], finished=True)
    run = _no_coalesce()
    run.run(t.chunks, piece=3)
    (m,) = run.objects
    assert m.md5 == md5("".join(parts).encode()) and m.complete


@pytest.mark.parametrize("params", [
    {},
    {"client_no_context_takeover": True, "server_no_context_takeover": True},
    {"server_max_window_bits": 10},
    {"client_max_window_bits": 9, "server_no_context_takeover": True},
])
def test_permessage_deflate(params: dict[str, object]) -> None:
    t = WsTalk(deflate=params)
    assert "permessage-deflate" in t.chunks[1][1].decode()
    rng = random.Random(4)
    msgs = [(C if i % 2 else S, (f"message {i} about the shared quarterly plan " * rng.randint(20, 90)).encode())
            for i in range(8)]
    for d, m in msgs:
        t.send(d, m.decode() if d == C else m)  # text one way, binary the other
    run = _no_coalesce()
    run.run(t.chunks, piece=700)
    got = run.by_md5()
    for _, m in msgs:
        assert got[md5(m)].meta["websocket_compressed"] == "1"
    assert len(run.objects) == len(msgs)


def test_small_messages_are_coalesced_per_direction() -> None:
    t = WsTalk()
    chat = [f'{{"type":"chat","n":{i},"text":"hello {i}"}}' for i in range(300)]
    for i, m in enumerate(chat):
        t.send(C if i % 3 else S, m)
    run = Layer(limits={"websocket": WebSocketLimits(coalesce_bytes=4096)})
    run.run(t.chunks)
    up = [o for o in run.objects if o.direction is Direction.TO_SERVER]
    down = [o for o in run.objects if o.direction is Direction.TO_CLIENT]
    assert all(o.kind == "messages" and o.size <= 4096 for o in run.objects)
    joined_up = "\n".join(m for i, m in enumerate(chat) if i % 3)
    assert sum(o.size for o in up) + len(up) - 1 == len(joined_up)
    assert len(down) >= 2 and up[0].meta["websocket_messages"].startswith("2-")
    assert sum(o.data.count(b"\n") + 1 for o in run.objects) == len(chat)  # type: ignore[union-attr]


def test_message_cap() -> None:
    t = WsTalk()
    for i in range(10):
        t.send(S, bytes([i]) * 2000)
    run = Layer(limits={"websocket": WebSocketLimits(max_messages=4)})
    run.run(t.chunks)
    assert len(run.objects) == 4 and "websocket.too_many_messages" in run.ended[0].anomalies


def test_gap_inside_a_payload() -> None:
    t = WsTalk()
    big, after = random.Random(2).randbytes(30_000), b"after the gap" * 200
    t.send(S, big)
    t.send(S, after)
    srv = b"".join(b for d, b in t.chunks[2:] if d == S)
    cut = srv.index(big[5000:5100])
    st = Stream(make_flow(sport=8080))
    run = _no_coalesce()
    run.layer.feed_all(st.data(C, t.chunks[0][1]))
    run.layer.feed_all(st.data(S, t.chunks[1][1] + srv[:cut]))
    run.layer.feed_all(st.gap(S, 100))
    run.layer.feed_all(st.data(S, srv[cut + 100:]))
    run.close(st)
    got = {o.tx_id: o for o in run.objects}
    assert got[1].missing_bytes == 100 and not got[1].complete
    assert got[2].md5 == md5(after)


def test_garbage_after_upgrade_never_raises() -> None:
    rng = random.Random(9)
    t = WsTalk()
    for _ in range(100):
        run = Layer()
        run.run([t.chunks[0], t.chunks[1], (C, rng.randbytes(rng.randrange(1, 300))),
                 (S, rng.randbytes(rng.randrange(1, 300)))], piece=rng.choice([0, 2, 9]))
        assert "applayer.parser_error" not in run.ended[0].anomalies


def test_helpers() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3
    assert deflate_params("foo, permessage-deflate; client_max_window_bits=10; server_no_context_takeover") == {
        "client_max_window_bits": "10", "server_no_context_takeover": ""}
    assert deflate_params("x-webkit-deflate-frame") is None
