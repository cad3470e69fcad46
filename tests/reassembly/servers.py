"""Small real servers (and the clients no Debian tool provides) for the carrier captures.

``python -m tests.reassembly.servers KIND PORT [ARGS]`` runs one of: ``h2`` (the ``h2`` library:
prior knowledge and ``Upgrade: h2c``), ``ws`` (``wsproto``), ``imap``, ``pop3`` (minimal
hand-written servers of RFC 3501 / RFC 1939), ``dns`` (dnspython messages, UDP and TCP),
``ws-client HOST PORT`` and ``imap-client HOST PORT`` / ``pop3-client HOST PORT`` (imaplib,
poplib: the standard library's clients). Content comes from `content`, seeded, so the test
knows what crossed the wire. Each server handles connections one at a time until killed.
"""

from __future__ import annotations

import base64
import gzip
import random
import socket
import sys
from email.message import EmailMessage

PDF = b"%PDF-1.4\n" + random.Random(11).randbytes(150_000) + b"\n%%EOF\n"
NOTES = ("Project Nightjar milestones and the confidential roadmap.\n" * 400).encode()
UPLOAD = b"name,card\n" + b"alice,4111111111111111\n" * 2000
WS_TEXT = "the quarterly plan for Project Nightjar, please keep it private " * 30
WS_BINARY = random.Random(12).randbytes(40_000)
WS_SMALL = [f'{{"type":"chat","n":{i}}}' for i in range(20)]


def mail(n: int) -> bytes:
    """Message ``n`` of the mailbox: a text body and a PDF attachment (CRLF line ends)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@corp.example", "bob@example.net", f"plan {n}"
    msg["Message-ID"] = f"<plan{n}@corp.example>"
    msg.set_content(f"Hello Bob,\n\nplan number {n} attached.\n.\n..and a dotted line\n")
    msg.add_attachment(attachment(n), maintype="application", subtype="pdf", filename=f"plan{n}.pdf")
    msg.set_boundary(f"==plan-{n}-boundary==")  # the same bytes in every process
    return msg.as_bytes().replace(b"\n", b"\r\n")


def attachment(n: int) -> bytes:
    return b"%PDF-1.4\n" + random.Random(100 + n).randbytes(20_000 + n) + b"\n%%EOF\n"


def _listen(port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        s.listen(8)
    return s


def _lines(conn: socket.socket) -> socket.SocketIO:
    return conn.makefile("rb")  # type: ignore[return-value]


# -- HTTP/2 -------------------------------------------------------------------------------------------


def _h2_conn(conn: socket.socket) -> None:
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, WindowUpdated

    first = conn.recv(65535)
    h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
    requests: dict[int, dict[bytes, bytes]] = {}
    pending: dict[int, bytes] = {}
    if first.startswith(b"PRI * HTTP/2.0"):
        h2.initiate_connection()
        events = h2.receive_data(first)
    else:  # an HTTP/1.1 request with Upgrade: h2c
        head, _, rest = first.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, path, _ = lines[0].split(b" ", 2)
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        h2.initiate_upgrade_connection(hdrs.get(b"http2-settings", b""))
        requests[1] = {b":method": method, b":path": path, b"accept-encoding": hdrs.get(b"accept-encoding", b"")}
        _h2_respond(h2, 1, requests[1], pending)
        events = h2.receive_data(rest) if rest else []
    while True:
        for ev in events:
            if isinstance(ev, RequestReceived):
                requests[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, DataReceived):
                h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded) and ev.stream_id in requests:
                _h2_respond(h2, ev.stream_id, requests[ev.stream_id], pending)
            elif isinstance(ev, ConnectionTerminated):
                conn.sendall(h2.data_to_send())
                return
            elif isinstance(ev, WindowUpdated):
                pass
        for sid in list(pending):
            while sid in pending:
                body = pending[sid]
                room = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size)
                if room <= 0:
                    break  # wait for a WINDOW_UPDATE
                h2.send_data(sid, body[:room], end_stream=len(body) <= room)
                pending[sid] = body[room:]
                if not pending[sid]:
                    del pending[sid]
        conn.sendall(h2.data_to_send())
        data = conn.recv(65535)
        if not data:
            return
        events = h2.receive_data(data)


def _h2_respond(h2: object, sid: int, req: dict[bytes, bytes], pending: dict[int, bytes]) -> None:
    path = req.get(b":path", b"")
    hdrs: list[tuple[bytes, bytes]]
    if path.startswith(b"/report.pdf"):
        body, hdrs = PDF, [(b"content-type", b"application/pdf"),
                           (b"content-disposition", b'attachment; filename="Q3 report.pdf"')]
    elif path.startswith(b"/notes.txt"):
        body, hdrs = gzip.compress(NOTES, mtime=0), [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")]
    else:
        body, hdrs = b"stored", [(b"content-type", b"text/plain")]
    status = b"201" if req.get(b":method") == b"POST" else b"200"
    h2.send_headers(sid, [(b":status", status), (b"content-length", str(len(body)).encode()), *hdrs])  # type: ignore[attr-defined]
    pending[sid] = body


def serve_h2(port: int) -> None:
    srv = _listen(port)
    while True:
        conn, _ = srv.accept()
        try:
            _h2_conn(conn)
        except (OSError, ValueError) as exc:
            print("h2:", exc, file=sys.stderr)
        finally:
            conn.close()


# -- WebSocket ----------------------------------------------------------------------------------------


def _ws_pump(conn: socket.socket, ws: object) -> list[object]:
    data = conn.recv(65535)
    ws.receive_data(data or None)  # type: ignore[attr-defined]
    return list(ws.events())  # type: ignore[attr-defined]


def serve_ws(port: int) -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Message, Request
    from wsproto.extensions import PerMessageDeflate

    srv = _listen(port)
    while True:
        conn, _ = srv.accept()
        ws = WSConnection(ConnectionType.SERVER)
        try:
            done = False
            while not done:
                for ev in _ws_pump(conn, ws):
                    if isinstance(ev, Request):
                        conn.sendall(ws.send(AcceptConnection(extensions=[PerMessageDeflate()])))
                        conn.sendall(ws.send(Message(data=WS_BINARY)))
                    elif isinstance(ev, Message) and ev.message_finished and ev.data == "bye":
                        conn.sendall(ws.send(CloseConnection(code=1000)))
                        done = True
                    elif isinstance(ev, CloseConnection):
                        done = True
        except OSError as exc:
            print("ws:", exc, file=sys.stderr)
        finally:
            conn.close()


def ws_client(host: str, port: int) -> None:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Message, Request
    from wsproto.extensions import PerMessageDeflate

    conn = socket.create_connection((host, port))
    ws = WSConnection(ConnectionType.CLIENT)
    conn.sendall(ws.send(Request(host="chat.example.org", target="/socket?room=7",
                                 extensions=[PerMessageDeflate(client_no_context_takeover=True)])))
    got = 0
    while got < len(WS_BINARY):
        for ev in _ws_pump(conn, ws):
            if isinstance(ev, AcceptConnection):
                conn.sendall(ws.send(Message(data=WS_TEXT[:700], message_finished=False)))
                conn.sendall(ws.send(Message(data=WS_TEXT[700:], message_finished=True)))
                for m in WS_SMALL:
                    conn.sendall(ws.send(Message(data=m)))
            elif isinstance(ev, Message):
                got += len(ev.data)
    conn.sendall(ws.send(Message(data="bye")))
    while True:
        evs = _ws_pump(conn, ws)
        if any(isinstance(e, CloseConnection) for e in evs) or not evs:
            break
    conn.close()


# -- IMAP and POP3 ------------------------------------------------------------------------------------


def serve_imap(port: int) -> None:
    srv = _listen(port)
    while True:
        conn, _ = srv.accept()
        try:
            _imap_session(conn)
        except (OSError, ValueError) as exc:
            print("imap:", exc, file=sys.stderr)
        finally:
            conn.close()


def _imap_session(conn: socket.socket) -> None:
    f = _lines(conn)
    conn.sendall(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] tapsift test server ready\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
        cmd, _, arg = rest.partition(b" ")
        cmd = cmd.upper()
        if cmd == b"UID":
            cmd, _, arg = arg.partition(b" ")
            cmd = cmd.upper()
        if cmd == b"CAPABILITY":
            conn.sendall(b"* CAPABILITY IMAP4rev1 LITERAL+\r\n" + tag + b" OK done\r\n")
        elif cmd == b"LOGIN":
            conn.sendall(tag + b" OK logged in\r\n")
        elif cmd == b"SELECT":
            conn.sendall(b"* 3 EXISTS\r\n* FLAGS (\\Seen)\r\n" + tag + b" OK [READ-WRITE] done\r\n")
        elif cmd == b"FETCH":
            num, _, items = arg.partition(b" ")
            conn.sendall(_imap_fetch(int(num), items.upper()) + tag + b" OK fetch done\r\n")
        elif cmd == b"APPEND":
            size = int(arg[arg.rindex(b"{") + 1:arg.rindex(b"}")].rstrip(b"+"))
            if not arg.endswith(b"+}"):
                conn.sendall(b"+ go ahead\r\n")
            f.read(size)
            f.readline()
            conn.sendall(tag + b" OK [APPENDUID 1 9] appended\r\n")
        elif cmd == b"LOGOUT":
            conn.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
            return
        else:
            conn.sendall(tag + b" OK\r\n")


def _imap_fetch(n: int, items: bytes) -> bytes:
    m = mail(n)
    if b"BODY.PEEK[]<" in items or b"BODY[]<" in items:
        spec = items[items.index(b"<") + 1:items.index(b">")]
        start, length = (int(x) for x in spec.split(b"."))
        piece = m[start:start + length]
        return b"* %d FETCH (UID %d BODY[]<%d> {%d}\r\n" % (n, 100 + n, start, len(piece)) + piece + b")\r\n"
    if b"BODY[2]" in items or b"BODY.PEEK[2]" in items:
        part = base64.encodebytes(attachment(n)).replace(b"\n", b"\r\n")
        return b"* %d FETCH (UID %d BODY[2] {%d}\r\n" % (n, 100 + n, len(part)) + part + b")\r\n"
    name = b"RFC822" if b"RFC822" in items else b"BODY[]"
    return b"* %d FETCH (UID %d %s {%d}\r\n" % (n, 100 + n, name, len(m)) + m + b" FLAGS (\\Seen))\r\n"


def imap_client(host: str, port: int) -> None:
    import imaplib

    c = imaplib.IMAP4(host, port)
    c.login("alice", "secret")
    c.select("INBOX")
    c.fetch("1", "(BODY.PEEK[])")
    c.uid("FETCH", "2", "(RFC822)")
    c.fetch("3", "(BODY.PEEK[]<0.200>)")
    c.fetch("3", "(BODY.PEEK[2])")
    c.append("Sent", "(\\Seen)", None, mail(7))
    c.logout()


def serve_pop3(port: int) -> None:
    srv = _listen(port)
    while True:
        conn, _ = srv.accept()
        try:
            f = _lines(conn)
            conn.sendall(b"+OK tapsift test POP3 server ready\r\n")
            while True:
                line = f.readline()
                if not line:
                    break
                cmd, _, arg = line.rstrip(b"\r\n").partition(b" ")
                cmd = cmd.upper()
                if cmd in (b"RETR", b"TOP"):
                    n, _, lines = arg.partition(b" ")
                    m = mail(int(n))
                    if cmd == b"TOP":
                        head, _, body = m.partition(b"\r\n\r\n")
                        m = head + b"\r\n\r\n" + b"\r\n".join(body.split(b"\r\n")[:int(lines)]) + b"\r\n"
                    stuffed = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in m.split(b"\r\n"))
                    conn.sendall(b"+OK %d octets\r\n" % len(m) + stuffed + b".\r\n")
                elif cmd == b"STAT":
                    conn.sendall(b"+OK 3 90000\r\n")
                elif cmd == b"QUIT":
                    conn.sendall(b"+OK bye\r\n")
                    break
                else:
                    conn.sendall(b"+OK\r\n")
        except (OSError, ValueError) as exc:
            print("pop3:", exc, file=sys.stderr)
        finally:
            conn.close()


def pop3_client(host: str, port: int) -> None:
    import poplib

    c = poplib.POP3(host, port)
    c.user("alice")
    c.pass_("secret")
    c.stat()
    c.retr(1)
    c.retr(2)
    c.top(3, 2)
    c.quit()


# -- DNS ---------------------------------------------------------------------------------------------


def serve_dns(port: int) -> None:
    import select

    import dns.message
    import dns.rrset

    def answer(wire: bytes) -> bytes:
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        name = q.question[0].name.to_text()
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", "edge." + name))
        r.answer.append(dns.rrset.from_text("edge." + name, 60, "IN", "A", "192.0.2.44"))
        return r.to_wire()

    udp, tcp = _listen(port, socket.SOCK_DGRAM), _listen(port)
    while True:
        ready, _, _ = select.select([udp, tcp], [], [])
        if udp in ready:
            data, addr = udp.recvfrom(4096)
            udp.sendto(answer(data), addr)
        if tcp in ready:
            conn, _ = tcp.accept()
            f = _lines(conn)
            n = int.from_bytes(f.read(2), "big")
            a = answer(f.read(n))
            conn.sendall(len(a).to_bytes(2, "big") + a)
            conn.close()


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind.endswith("-client"):
        {"ws-client": ws_client, "imap-client": imap_client, "pop3-client": pop3_client}[kind](argv[1], int(argv[2]))
        return 0
    {"h2": serve_h2, "ws": serve_ws, "imap": serve_imap, "pop3": serve_pop3, "dns": serve_dns}[kind](int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
