"""IMAP and POP3: fetched, retrieved and appended messages through the MIME path.

Messages are made by Python's ``email`` package; sessions are scripted as the RFCs' examples
and real servers write them (the real-peer test in test_carrier_peers.py runs imaplib/poplib
against live servers).
"""

from __future__ import annotations

import base64
import hashlib
import random
from email.message import EmailMessage

import pytest

from appliance.model import Direction
from reassembly.applayer.imap import probe as imap_probe
from reassembly.applayer.pop3 import probe as pop3_probe
from tests.reassembly.applayer_run import Layer
from tests.reassembly.factories import Stream, make_flow
from tools import synth as S

C, SV = Direction.TO_SERVER, Direction.TO_CLIENT


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def message(subject: str, attachment: bytes, name: str = "plan.pdf", *, dots: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@corp.example", "bob@example.net", subject
    msg["Message-ID"] = f"<{md5(subject.encode())}@corp.example>"
    body = "Hello Bob,\n\nsee the attached plan.\n"
    if dots:
        body += ".hidden line starting with a dot\n..two dots\n.\n"
    msg.set_content(body)
    msg.add_attachment(attachment, maintype="application", subtype="pdf", filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def _pdf(seed: int) -> bytes:
    return b"%PDF-1.4\n" + random.Random(seed).randbytes(9000) + b"\n%%EOF\n"


def stuff(data: bytes) -> bytes:
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in data.split(b"\r\n"))


def _flow(port: int):
    return make_flow(sport=port)


# -- POP3 -------------------------------------------------------------------------------------------


def pop3_session(msgs: list[bytes]) -> list[tuple[Direction, bytes]]:
    out = [(SV, b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n"), (C, b"CAPA\r\n"),
           (SV, b"+OK Capability list follows\r\nUSER\r\nTOP\r\nPIPELINING\r\n.\r\n"),
           (C, b"USER alice\r\n"), (SV, b"+OK\r\n"), (C, b"PASS secret\r\n"), (SV, b"+OK maildrop has 2\r\n"),
           (C, b"LIST\r\nUIDL\r\n"),
           (SV, b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n.\r\n")]
    # pipelined: both RETRs at once, both answers at once
    out.append((C, b"RETR 1\r\nRETR 2\r\n"))
    out.append((SV, b"".join(b"+OK %d octets\r\n" % len(m) + stuff(m) + b".\r\n" for m in msgs)))
    out += [(C, b"TOP 1 3\r\n")]
    head = msgs[0].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + b"\r\n".join(msgs[0].split(b"\r\n\r\n", 1)[1]
                                                                          .split(b"\r\n")[:3])
    out += [(SV, b"+OK\r\n" + stuff(head) + b"\r\n.\r\n"), (C, b"QUIT\r\n"), (SV, b"+OK bye\r\n")]
    return out


@pytest.mark.parametrize("piece", [0, 1, 13, 1448])
def test_pop3_retr_top_pipelined(piece: int) -> None:
    pdfs = [_pdf(1), _pdf(2)]
    msgs = [message("plan one", pdfs[0], dots=True), message("plan two", pdfs[1], "two.pdf")]
    run = Layer()
    run.run(pop3_session(msgs), flow=_flow(110), piece=piece)
    got = run.by_md5()
    assert run.ended[0].app_proto == "pop3"
    m1 = got[md5(msgs[0])]
    assert (m1.source, m1.kind, m1.direction, m1.tx_id) == ("pop3", "message", Direction.TO_CLIENT, 1)
    assert m1.meta["subject"] == "plan one" and m1.meta["user"] == "alice" and m1.meta["pop3_message"] == "1"
    att = got[md5(pdfs[0])]
    assert att.kind == "part" and att.parent_id == m1.id and att.filename == "plan.pdf"
    assert got[md5(pdfs[1])].filename == "two.pdf"
    top = [o for o in run.objects if o.meta.get("pop3_command") == "TOP" and o.kind == "message"]
    assert len(top) == 1 and "partial" in top[0].truncated
    text = [o for o in run.objects if o.kind == "part" and o.declared_mime == "text/plain" and o.tx_id == 1]
    assert b"\r\n.hidden line" in text[0].data and b"\r\n..two dots" in text[0].data  # type: ignore[operator]


def _tls_hello() -> bytes:
    return S.tls_client_hello(random.Random(3), "pop.example.net")


def test_pop3_stls_hands_off_to_tls() -> None:
    run = Layer()
    run.run([(SV, b"+OK ready\r\n"), (C, b"STLS\r\n"), (SV, b"+OK Begin TLS negotiation\r\n"),
             (C, _tls_hello()), (SV, S.tls_server_hello(random.Random(4)))], flow=_flow(110))
    (ev,) = run.events
    assert ev.event_type == "tls" and ev.fields["sni"] == "pop.example.net"
    assert run.ended[0].app_proto == "tls"


def test_pop3_stls_then_cleartext_goes_on() -> None:
    m = message("after stls", _pdf(5))
    run = Layer()
    run.run([(SV, b"+OK ready\r\n"), (C, b"STLS\r\n"), (SV, b"+OK Begin TLS negotiation\r\n"),
             (C, b"USER bob\r\nPASS x\r\nRETR 1\r\n"), (SV, b"+OK\r\n+OK\r\n+OK\r\n" + stuff(m) + b".\r\n")],
            flow=_flow(110))
    assert md5(m) in run.by_md5()
    assert "pop3.stls_cleartext" in run.ended[0].anomalies


def test_pop3_gap_in_message() -> None:
    pdf = _pdf(6)
    m = message("gap", pdf)
    body = b"+OK\r\n" + stuff(m) + b".\r\n"
    cut = body.index(b"Content-Transfer-Encoding: base64") + 200
    st = Stream(_flow(110))
    run = Layer()
    for evs in (st.data(SV, b"+OK hi\r\n"), st.data(C, b"RETR 1\r\n"), st.data(SV, body[:cut]), st.gap(SV, 76),
                st.data(SV, body[cut + 76:])):
        run.layer.feed_all(evs)
    run.close(st)
    msg = next(o for o in run.objects if o.kind == "message")
    assert msg.missing_bytes == 76 and not msg.complete
    assert any(o.kind == "part" and o.missing_bytes for o in run.objects)


# -- IMAP -------------------------------------------------------------------------------------------


def imap_session(msgs: list[bytes], part: bytes, upload: bytes, upload2: bytes) -> list[tuple[Direction, bytes]]:
    b64 = base64.encodebytes(part).replace(b"\n", b"\r\n")
    return [
        (SV, b"* OK [CAPABILITY IMAP4rev1 LITERAL+ STARTTLS] Dovecot ready.\r\n"),
        (C, b"a1 LOGIN alice \"s3cret\"\r\n"), (SV, b"a1 OK Logged in\r\n"),
        (C, b"a2 SELECT \"Sent Items\"\r\n"),
        (SV, b"* 3 EXISTS\r\n* FLAGS (\\Seen)\r\na2 OK [READ-WRITE] Select completed\r\n"),
        # pipelined FETCHes, answered in one go, with a literal in the middle of an item list
        (C, b"a3 FETCH 1 (UID BODY.PEEK[])\r\na4 UID FETCH 9 (BODY.PEEK[]<0.100>)\r\na5 FETCH 2 (BODY[2])\r\n"),
        (SV, b"* 1 FETCH (UID 7 BODY[] {%d}\r\n" % len(msgs[0]) + msgs[0] + b" FLAGS (\\Seen))\r\n"
             + b"a3 OK Fetch completed\r\n"
             + b"* 3 FETCH (UID 9 BODY[]<0> {100}\r\n" + msgs[1][:100] + b")\r\na4 OK done\r\n"
             + b"* 2 FETCH (BODY[2] {%d}\r\n" % len(b64) + b64 + b")\r\na5 OK done\r\n"),
        # APPEND with a synchronizing literal, then MULTIAPPEND with LITERAL+
        (C, b"a6 APPEND \"Sent Items\" (\\Seen) {%d}\r\n" % len(upload)), (SV, b"+ Ready for literal data\r\n"),
        (C, upload + b"\r\n"), (SV, b"a6 OK [APPENDUID 1 10] Append completed\r\n"),
        (C, b"a7 APPEND Drafts {%d+}\r\n" % len(upload2) + upload2 + b" (\\Draft) {5+}\r\nhello\r\n"),
        (SV, b"a7 OK done\r\n"), (C, b"a8 LOGOUT\r\n"), (SV, b"* BYE\r\na8 OK bye\r\n"),
    ]


@pytest.mark.parametrize("piece", [0, 1, 11, 1448])
def test_imap_fetch_partial_part_and_append(piece: int) -> None:
    pdfs = [_pdf(10), _pdf(11), _pdf(12), _pdf(13)]
    msgs = [message("fetched", pdfs[0]), message("partly", pdfs[1])]
    up, up2 = message("uploaded", pdfs[2], "up.pdf"), message("draft", pdfs[3], "draft.pdf")
    run = Layer()
    run.run(imap_session(msgs, pdfs[1], up, up2), flow=_flow(143), piece=piece)
    got = run.by_md5()
    assert run.ended[0].app_proto == "imap"
    m = got[md5(msgs[0])]
    assert (m.source, m.kind, m.direction) == ("imap", "message", Direction.TO_CLIENT)
    assert m.meta["imap_item"] == "BODY[]" and m.meta["imap_uid"] == "7" and m.meta["imap_mailbox"] == "Sent Items"
    assert m.meta["user"] == "alice" and m.meta["subject"] == "fetched"
    assert got[md5(pdfs[0])].parent_id == m.id and got[md5(pdfs[0])].filename == "plan.pdf"
    partial = next(o for o in run.objects if o.meta.get("imap_item") == "BODY[]<0>")
    assert "partial" in partial.truncated and partial.size == 100
    sec = got[md5(pdfs[1])]
    assert sec.meta["imap_item"] == "BODY[2]" and sec.meta["imap_decoded"] == "base64"
    u = got[md5(up)]
    assert u.direction is Direction.TO_SERVER and u.meta["imap_command"] == "APPEND"
    assert u.meta["imap_mailbox"] == "Sent Items"
    assert got[md5(pdfs[2])].filename == "up.pdf"
    assert got[md5(up2)].meta["imap_mailbox"] == "Drafts" and got[md5(pdfs[3])].filename == "draft.pdf"
    assert md5(b"hello") in got  # the second message of the MULTIAPPEND


def test_imap_starttls_hands_off_to_tls() -> None:
    run = Layer()
    run.run([(SV, b"* OK IMAP4rev1 ready\r\n"), (C, b"a1 STARTTLS\r\n"), (SV, b"a1 OK Begin TLS\r\n"),
             (C, S.tls_client_hello(random.Random(7), "imap.example.net"))], flow=_flow(143))
    assert [e.fields.get("sni") for e in run.events] == ["imap.example.net"]


def test_imap_starttls_then_cleartext_goes_on() -> None:
    m = message("clear", _pdf(20))
    run = Layer()
    run.run([(SV, b"* OK ready\r\n"), (C, b"a1 STARTTLS\r\n"), (SV, b"a1 OK Begin TLS\r\n"),
             (C, b"a2 FETCH 1 BODY[]\r\n"), (SV, b"* 1 FETCH (BODY[] {%d}\r\n" % len(m) + m + b")\r\na2 OK\r\n")],
            flow=_flow(143))
    assert md5(m) in run.by_md5() and "imap.starttls_cleartext" in run.ended[0].anomalies


def test_imap_gap_in_literal_keeps_counting() -> None:
    m1, m2 = message("one", _pdf(30)), message("two", _pdf(31))
    srv = (b"* 1 FETCH (BODY[] {%d}\r\n" % len(m1) + m1 + b")\r\na1 OK\r\n"
           + b"* 2 FETCH (BODY[] {%d}\r\n" % len(m2) + m2 + b")\r\na2 OK\r\n")
    cut = srv.index(m1[3000:3100])
    st = Stream(_flow(143))
    run = Layer()
    for evs in (st.data(SV, b"* OK hi\r\n"), st.data(C, b"a1 FETCH 1 BODY[]\r\na2 FETCH 2 BODY[]\r\n"),
                st.data(SV, srv[:cut]), st.gap(SV, 100), st.data(SV, srv[cut + 100:])):
        run.layer.feed_all(evs)
    run.close(st)
    got = {o.meta.get("subject"): o for o in run.objects if o.kind == "message"}
    assert got["one"].missing_bytes == 100 and got["two"].md5 == md5(m2)


def test_probes() -> None:
    f = make_flow()
    assert imap_probe(b"", b"* OK IMAP ready\r\n", f) is True
    assert imap_probe(b"", b"* O", f) is None
    assert imap_probe(b"a1 CAPABILITY\r\n", b"", f) is True
    assert imap_probe(b"GET / HTTP/1.1\r\n", b"", f) is False
    assert pop3_probe(b"", b"+OK ready\r\n", f) is True
    assert pop3_probe(b"", b"220 smtp\r\n", f) is False
    assert pop3_probe(b"USER bob\r\n", b"", f) is None


def test_garbage_never_raises() -> None:
    rng = random.Random(8)
    for greeting in (b"* OK hi\r\n", b"+OK hi\r\n"):
        for _ in range(60):
            run = Layer()
            junk = rng.randbytes(rng.randrange(1, 500)).replace(b"\n", b"{99}\r\n", 3)
            run.run([(SV, greeting), (C, junk), (SV, junk[::-1] + b"\r\n.\r\n")], flow=_flow(9999),
                    piece=rng.choice([0, 3]))
            assert "applayer.parser_error" not in run.ended[0].anomalies
