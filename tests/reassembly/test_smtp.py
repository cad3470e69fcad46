"""reassembly.smtp: SMTP sessions built in the test, fed as stream events (sans-IO)."""

from __future__ import annotations

import base64
import hashlib
import os
import quopri

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Direction
from reassembly.objects import ObjectFactory
from reassembly.smtp import SmtpParser, looks_like_smtp
from tests.reassembly.factories import C, S, Stream, make_flow

PDF = b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n"
TEXT = "Grüße — the quarterly numbers are attached. A line with = sign and trailing space \n" * 3


def b64lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def mail(subject: bytes = b"Report", attach: bytes = PDF, name: bytes = b"report.pdf") -> bytes:
    return (
        b"From: Alice <alice@example.org>\r\n"
        b"To: bob@example.com\r\n"
        b"Subject: " + subject + b"\r\n"
        b"Message-ID: <m1@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"==b1==\"\r\n"
        b"\r\n"
        b"--==b1==\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        + quopri.encodestring(TEXT.encode()).replace(b"\n", b"\r\n")
        + b"\r\n--==b1==\r\n"
        b"Content-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename=\"" + name + b"\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n" + b64lines(attach) + b"--==b1==--\r\n"
    )


def stuff(msg: bytes) -> bytes:
    """Dot-stuff ``msg`` and add the terminating line, as a client does after DATA."""
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in lines) + b".\r\n"


class Session:
    """Scripted SMTP session: feeds both directions, collects objects."""

    def __init__(self, *, body_limit: int = 0, max_line: int = 8192, keep: int = 1 << 22) -> None:
        self.s = Stream(make_flow(uid="Csmtp", sport=25))
        self.fac = ObjectFactory(keep_bytes=keep)
        self.p = SmtpParser(self.s.flow, self.fac, body_limit=body_limit, max_line=max_line)
        self.objs = []

    def c(self, data: bytes, pieces=None) -> Session:
        for ev in self.s.data(C, data, pieces=pieces):
            self.objs += self.p.feed(ev)
        return self

    def srv(self, data: bytes) -> Session:
        for ev in self.s.data(S, data):
            self.objs += self.p.feed(ev)
        return self

    def gap(self, n: int, d=C) -> Session:
        for ev in self.s.gap(d, n):
            self.objs += self.p.feed(ev)
        return self

    def close(self) -> Session:
        for d in (C, S):
            for ev in self.s.close(d):
                self.objs += self.p.feed(ev)
        return self

    def hello(self) -> Session:
        return (self.srv(b"220 mx.example.com ESMTP ready\r\n").c(b"EHLO client.example.org\r\n")
                .srv(b"250-mx.example.com\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 STARTTLS\r\n"))

    def envelope(self, frm=b"alice@example.org", to=(b"bob@example.com",)) -> Session:
        self.c(b"MAIL FROM:<" + frm + b"> SIZE=1000\r\n").srv(b"250 ok\r\n")
        for r in to:
            self.c(b"RCPT TO:<" + r + b">\r\n").srv(b"250 ok\r\n")
        return self

    def send(self, msg: bytes, pieces=None) -> Session:
        self.c(b"DATA\r\n").srv(b"354 go ahead\r\n").c(stuff(msg), pieces=pieces)
        return self.srv(b"250 queued\r\n")

    def of(self, kind: str):
        return [o for o in self.objs if o.kind == kind]


def test_message_with_pdf_and_qp_text():
    msg = mail()
    s = Session().hello().envelope(to=(b"bob@example.com", b"carol@example.com")).send(msg)
    s.c(b"QUIT\r\n").srv(b"221 bye\r\n").close()
    [m] = s.of("message")
    text, pdf = s.of("part")
    assert m.data == msg and m.size == len(msg) and m.md5 == hashlib.md5(msg).hexdigest()
    assert m.source == "smtp" and m.direction is Direction.TO_SERVER and m.filename == ""
    assert m.declared_mime == "message/rfc822" and m.depth == 0 and m.complete
    assert m.flow.dest_port == 25 and m.flow.src_ip == "10.0.0.1"
    assert m.meta == {
        "mail_from": "alice@example.org",
        "rcpt_to": "bob@example.com,carol@example.com",
        "subject": "Report",
        "from": "Alice <alice@example.org>",
        "to": "bob@example.com",
        "message_id": "<m1@example.org>",
        "helo": "client.example.org",
    }
    assert text.data == TEXT.replace("\n", "\r\n").encode() and text.declared_mime == "text/plain"
    # the attachment's md5 is the original file's md5
    assert pdf.md5 == hashlib.md5(PDF).hexdigest() and pdf.sha256 == hashlib.sha256(PDF).hexdigest()
    assert pdf.filename == "report.pdf" and pdf.declared_mime == "application/pdf"
    assert pdf.sniffed_mime == "application/pdf"
    for part in (text, pdf):
        assert part.kind == "part" and part.parent_id == m.id and part.depth == 1 and part.tx_id == 1
        assert part.meta["mail_from"] == "alice@example.org" and part.meta["subject"] == "Report"
    assert s.objs[-1] is m  # parts first, then their message


def test_segmentation_does_not_matter():
    msg = mail()
    ref = Session().hello().envelope().send(msg).close()
    cuts = list(range(1, len(msg), 97))
    s = Session().hello().envelope().send(msg, pieces=cuts).close()
    assert [(o.kind, o.md5) for o in s.objs] == [(o.kind, o.md5) for o in ref.objs]


def test_pipelining_with_rejected_recipient():
    s = Session().hello()
    s.c(b"MAIL FROM:<a@x.org>\r\nRCPT TO:<ok@y.org>\r\nRCPT TO:<bad@y.org>\r\n"
        b"RCPT TO:<ok2@y.org>\r\nDATA\r\n")
    s.srv(b"250 ok\r\n250 ok\r\n550 no such user\r\n250 ok\r\n354 go\r\n")
    s.c(stuff(b"Subject: p\r\n\r\nhi\r\n")).srv(b"250 ok\r\n").close()
    [m] = s.of("message")
    assert m.meta["rcpt_to"] == "ok@y.org,ok2@y.org" and m.meta["mail_from"] == "a@x.org"
    assert [p.data for p in s.of("part")] == [b"hi\r\n"]


def test_data_sent_before_354_is_held_until_the_reply():
    s = Session().hello().envelope()
    s.c(b"DATA\r\n" + stuff(b"Subject: eager\r\n\r\nbody\r\n"))
    assert s.objs == []
    s.srv(b"354 go\r\n250 ok\r\n").close()
    assert [o.kind for o in s.objs] == ["part", "message"]


def test_bdat_chunks_binary_and_last():
    body = os.urandom(3000) + b"\r\n.\r\nnot an end\r\n"  # dots mean nothing in BDAT
    msg = (b"Subject: chunked\r\nContent-Type: application/octet-stream; name=blob.bin\r\n"
           b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    c1, c2, c3 = msg[:1000], msg[1000:2500], msg[2500:]
    s = Session().hello().envelope()
    s.c(b"BDAT %d\r\n" % len(c1) + c1).srv(b"250 ok\r\n")
    s.c(b"BDAT %d\r\n" % len(c2)).c(c2, pieces=[7, 700]).srv(b"250 ok\r\n")
    s.c(b"BDAT %d LAST\r\n" % len(c3) + c3 + b"QUIT\r\n").srv(b"250 ok\r\n221 bye\r\n").close()
    [m] = s.of("message")
    [part] = s.of("part")
    assert m.data == msg and m.complete
    assert part.data == body and part.filename == "blob.bin"


def test_bdat_zero_last_and_two_messages():
    s = Session().hello().envelope()
    chunk = b"Subject: a\r\n\r\nfirst\r\n"
    s.c(b"BDAT %d\r\n%sBDAT 0 LAST\r\n" % (len(chunk), chunk)).srv(b"250 ok\r\n250 ok\r\n")
    s.envelope(frm=b"second@x.org").send(b"Subject: b\r\n\r\nsecond\r\n").close()
    m1, m2 = s.of("message")
    assert (m1.tx_id, m2.tx_id) == (1, 2)
    assert m1.meta["subject"] == "a" and m2.meta["subject"] == "b"
    assert m2.meta["mail_from"] == "second@x.org"
    assert [p.data for p in s.of("part")] == [b"first\r\n", b"second\r\n"]


def test_rejected_data_gives_no_message():
    s = Session().hello().envelope()
    s.c(b"DATA\r\n").srv(b"554 no valid recipients\r\n")
    s.c(b"RSET\r\n").srv(b"250 ok\r\n").c(b"QUIT\r\n").srv(b"221 bye\r\n").close()
    assert s.objs == []
    # the next transaction in the same session still works
    s2 = Session().hello().envelope()
    s2.c(b"DATA\r\n").srv(b"451 try later\r\n").envelope().send(b"Subject: ok\r\n\r\nx\r\n").close()
    assert [o.meta["subject"] for o in s2.of("message")] == ["ok"]


def test_rset_aborts_bdat_message():
    s = Session().hello().envelope()
    s.c(b"BDAT 10\r\n0123456789").srv(b"250 ok\r\n").c(b"RSET\r\n").srv(b"250 ok\r\n")
    [m] = s.of("message")
    assert m.truncated == ("aborted",)


def test_starttls_stops_parsing():
    s = Session().hello()
    s.c(b"STARTTLS\r\n").srv(b"220 go ahead\r\n")
    s.c(b"\x16\x03\x01\x02\x00" + os.urandom(500)).srv(b"\x16\x03\x03" + os.urandom(300))
    s.c(b"MAIL FROM:<x@y>\r\nDATA\r\n").srv(b"354 go\r\n").c(b"Subject: hidden\r\n\r\n.\r\n").close()
    assert s.p.encrypted and "smtp.starttls" in s.p.anomalies and s.objs == []


def test_starttls_then_clear_text_keeps_parsing():
    """A TLS-decrypting broker mirrors the session after STARTTLS in the clear: the bytes after
    the 220 are SMTP, not a TLS record; the envelope starts over (RFC 3207)."""
    for server_first in (False, True):
        s = Session().hello().envelope(frm=b"before@tls.example")
        s.c(b"STARTTLS\r\n").srv(b"220 2.0.0 Ready to start TLS\r\n")
        if server_first:  # some brokers replay the server's greeting again first
            s.srv(b"220 mx.example.com ESMTP\r\n")
        s.c(b"EHLO client.example.org\r\n").srv(b"250-mx.example.com\r\n250 SIZE\r\n")
        s.envelope(frm=b"after@tls.example").send(mail(subject=b"inside")).close()
        [m] = s.of("message")
        assert not s.p.encrypted and {"smtp.starttls", "smtp.starttls_cleartext"} <= set(s.p.anomalies)
        assert m.meta["subject"] == "inside" and m.meta["mail_from"] == "after@tls.example"
        assert [p.filename for p in s.of("part") if p.filename] == ["report.pdf"]


def test_starttls_refused_keeps_parsing():
    s = Session().hello()
    s.c(b"STARTTLS\r\n").srv(b"454 TLS not available\r\n")
    s.envelope().send(b"Subject: clear\r\n\r\nx\r\n").close()
    assert not s.p.encrypted and len(s.of("message")) == 1


def test_rfc2047_and_rfc2231_filenames():
    msg = (
        b"Subject: =?UTF-8?B?UmFwcG9ydCDDqXTDqQ==?=\r\n"
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\nA\r\n"
        b"--x\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment;\r\n filename*0*=utf-8''%E6%8A%A5%E5%91%8A;\r\n"
        b" filename*1=\"-2024\"; filename*2*=%2Epdf\r\n\r\nB\r\n"
        b"--x\r\nContent-Type: application/octet-stream; name=\"=?utf-8?Q?caf=C3=A9.txt?=\"\r\n\r\nC\r\n"
        b"--x\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
        b"filename=\"=?ISO-8859-1?Q?na=EFve.txt?=\"\r\n\r\nD\r\n--x--\r\n"
    )
    s = Session().hello().envelope().send(msg).close()
    assert [p.filename for p in s.of("part")] == ["résumé.pdf", "报告-2024.pdf", "café.txt", "naïve.txt"]
    assert s.of("message")[0].meta["subject"] == "Rapport été"


def test_nested_multipart_and_rfc822_attachment():
    inner = (b"From: x@y\r\nSubject: fwd inner\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
             b"--in\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
             b"--in\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             + b64lines(b"PK\x03\x04zipdata") + b"--in--\r\n")
    msg = (b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
           b"--out\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n"
           b"--alt\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
           b"--alt\r\nContent-Type: text/html\r\n\r\n<b>html</b>\r\n--alt--\r\n"
           b"--out\r\nContent-Type: message/rfc822\r\n"
           b"Content-Disposition: attachment; filename=fwd.eml\r\n\r\n"
           + inner + b"--out--\r\n")
    s = Session().hello().envelope().send(msg).close()
    [m] = s.of("message")
    parts = s.of("part")
    assert [(p.declared_mime, p.data) for p in parts] == [
        ("text/plain", b"plain"),
        ("text/html", b"<b>html</b>"),
        ("text/plain", b"inner text"),
        ("application/zip", b"PK\x03\x04zipdata"),
    ]
    assert parts[3].filename == "a.zip" and parts[3].meta["mime_path"] == "1.2.2"
    assert all(p.parent_id == m.id and p.depth == 1 for p in parts)
    assert m.meta["subject"] == "outer"


def test_dot_unstuffing():
    body = b".hidden line\r\n..two dots\r\n.\r\n"[:-3] + b"end\r\n"
    msg = b"Subject: dots\r\n\r\n" + body
    s = Session().hello().envelope()
    s.c(b"DATA\r\n").srv(b"354 go\r\n").c(stuff(msg), pieces=[20, 21, 34]).srv(b"250 ok\r\n").close()
    [m] = s.of("message")
    [p] = s.of("part")
    assert m.data == msg and p.data == body
    assert p.data.startswith(b".hidden line\r\n..two dots")


def test_gap_inside_a_part_then_resync():
    msg = mail()
    wire = stuff(msg)
    cut = wire.index(b"Content-Transfer-Encoding: base64") + 500
    s = Session().hello().envelope()
    s.c(b"DATA\r\n").srv(b"354 go\r\n").c(wire[:cut]).gap(300).c(wire[cut + 300 :]).srv(b"250 ok\r\n")
    s.envelope().send(b"Subject: after\r\n\r\nfine\r\n").close()
    m1, m2 = s.of("message")
    parts = s.of("part")
    pdf = next(p for p in parts if p.filename == "report.pdf")
    assert m1.missing_bytes == 300 and m1.gaps and not m1.complete
    assert pdf.gaps and pdf.missing_bytes > 0 and pdf.state == "TRUNCATED"
    assert pdf.md5 != hashlib.md5(PDF).hexdigest()
    assert m2.complete and m2.meta["subject"] == "after"


def test_gap_swallows_the_end_of_data():
    s = Session().hello().envelope()
    s.c(b"DATA\r\n").srv(b"354 go\r\n").c(b"Subject: cut\r\n\r\nsome text\r\nmore")
    s.gap(40).srv(b"250 ok\r\n")  # the server's reply says the message ended
    s.envelope().send(b"Subject: next\r\n\r\nx\r\n").close()
    m1, m2 = s.of("message")
    assert m1.missing_bytes == 40 and m1.meta["subject"] == "cut"
    assert m2.meta["subject"] == "next" and m2.complete


def test_gap_in_commands_resyncs_on_next_line():
    s = Session().hello()
    s.c(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d").gap(25).c(b"xx>\r\nDATA\r\n")
    s.srv(b"250 ok\r\n250 ok\r\n354 go\r\n")
    s.c(stuff(b"Subject: s\r\n\r\nbody\r\n")).srv(b"250 ok\r\n").close()
    assert [o.kind for o in s.objs] == ["part", "message"]


def test_long_lines_are_bounded():
    blob = os.urandom(200_000)
    msg = (b"Subject: long\r\nContent-Type: application/octet-stream; name=x\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(blob) + b"\r\n")
    s = Session(max_line=1000).hello().envelope().send(msg, pieces=list(range(0, len(msg), 1460))).close()
    [p] = s.of("part")
    assert p.md5 == hashlib.md5(blob).hexdigest()
    assert len(s.p._cbuf) <= 1001
    # a long command line is dropped, not buffered
    s = Session(max_line=1000).hello()
    s.c(b"NOOP " + b"x" * 50_000)
    assert len(s.p._cbuf) <= 1001 and "smtp.long_line" in s.p.anomalies


def test_body_limit_and_keep_bytes():
    s = Session(body_limit=1000, keep=100).hello().envelope().send(mail()).close()
    [m] = s.of("message")
    pdf = next(p for p in s.of("part") if p.filename == "report.pdf")
    assert m.size == 1000 and "body_limit" in m.truncated and len(m.data) == 100
    assert pdf.size == 1000 and "body_limit" in pdf.truncated


def test_close_without_stream_closed_flushes_the_message():
    s = Session().hello().envelope()
    s.c(b"DATA\r\n").srv(b"354 go\r\n").c(b"Subject: evicted\r\n\r\npartial body\r\n")
    [p, m] = s.p.close(s.s.flow, 5)
    assert m.truncated == ("eof",) and p.data == b"partial body\r\n"
    assert s.p.close(s.s.flow, 6) == []


def test_client_closes_mid_message():
    s = Session().hello().envelope()
    s.c(b"DATA\r\n").srv(b"354 go\r\n").c(b"Subject: eof\r\n\r\nunfinished").close()
    [p, m] = s.objs
    assert m.truncated == ("eof",) and p.data == b"unfinished" and p.truncated == ("eof",)


def test_tnef_winmail_dat_is_a_part():
    tnef = b"\x78\x9f\x3e\x22" + os.urandom(400)
    msg = (b"Subject: tnef\r\nContent-Type: multipart/mixed; boundary=t\r\n\r\n--t\r\n"
           b"Content-Type: application/ms-tnef; name=\"winmail.dat\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + b64lines(tnef) + b"--t--\r\n")
    [p] = Session().hello().envelope().send(msg).close().of("part")
    assert p.filename == "winmail.dat" and p.md5 == hashlib.md5(tnef).hexdigest()


def test_looks_like_smtp():
    banner = b"220 mx.example.com ESMTP Postfix\r\n"
    assert looks_like_smtp(banner, b"EHLO me\r\n") is True
    assert looks_like_smtp(b"220 ftp.example.com FTP server\r\n", b"USER anonymous\r\n") is False
    assert looks_like_smtp(banner, b"") is True
    assert looks_like_smtp(b"220 host ready\r\n", b"") is None
    assert looks_like_smtp(b"22", b"") is None
    assert looks_like_smtp(b"HTTP/1.1 200 OK\r\n", b"GET / HTTP/1.1\r\n") is False
    assert looks_like_smtp(b"", b"EHL") is None


SMTP_WORDS = st.sampled_from([
    b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n", b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n", b"RSET\r\n", b"STARTTLS\r\n", b".\r\n", b"..x\r\n", b"\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"--b--\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"QUJD\r\n", b"=?utf-8?b?QQ==?=\r\n",
])
REPLIES = st.sampled_from([b"220 hi\r\n", b"250 ok\r\n", b"354 go\r\n", b"550 no\r\n", b"250-x\r\n",
                           b"221 bye\r\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(st.binary(max_size=60), SMTP_WORDS, REPLIES),
                          st.integers(0, 3)), max_size=40))
def test_never_raises_on_arbitrary_input(script):
    s = Session(max_line=64)
    for to_server, data, op in script:
        d = C if to_server else S
        if op == 3:
            s.gap(len(data) + 1, d)
        else:
            for ev in s.s.data(d, data, pieces=[op * 5]):
                out = s.p.feed(ev)
                assert isinstance(out, list)
    s.close()
    assert "smtp.parser_error" not in s.p.anomalies


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 9000), max_size=12))
def test_any_segmentation_gives_the_same_objects(cuts):
    msg = mail(attach=PDF[:3000])
    ref = Session().hello().envelope().send(msg).close()
    s = Session(max_line=200).hello().envelope().send(msg, pieces=cuts).close()
    assert [(o.kind, o.md5, o.filename) for o in s.objs] == [(o.kind, o.md5, o.filename) for o in ref.objs]
