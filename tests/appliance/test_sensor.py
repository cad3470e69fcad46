"""The composition root: protocol detection by content and what each kind of flow yields."""

from __future__ import annotations

import hashlib
from pathlib import Path

from appliance.model import ContentObject
from appliance.sensor import Sensor
from appliance.settings import Settings
from capture.pcapfile import open_capture
from tools import synth as S


def _run(pcap: Path) -> tuple[Sensor, list[ContentObject]]:
    objs: list[ContentObject] = []
    sensor = Sensor(Settings(), on_object=objs.append)
    with open_capture(pcap) as cap:
        sensor.run(cap.frames())
    sensor.finish()
    return sensor, objs


def test_protocols_detected_by_content_not_port(tmp_path: Path) -> None:
    t = S.Trace(seed=5)
    pdf = S.pdf_document("Quarterly", ("Revenue grew.",))
    # HTTP on port 443, TLS on port 80, SSH on 8080: the port says nothing
    s = t.session(("10.20.1.2", 40001), ("192.0.2.1", 443), at=0.0)
    s.http(S.http_request("GET", "/q.pdf", "x.example"), S.http_response(200, pdf, content_type="application/pdf"))
    s.close()
    tls = t.session(("10.20.1.2", 40002), ("192.0.2.1", 80), at=0.1)
    tls.client_send(S.tls_client_hello(tls.rng, "x.example"))
    tls.server_send(S.tls_server_hello(tls.rng))
    tls.close()
    ssh = t.session(("10.20.1.2", 40003), ("192.0.2.1", 8080), at=0.2)
    ssh.server_send(S.ssh_banner(server=True))
    ssh.client_send(S.ssh_banner())
    ssh.close()
    # a bare file pushed over a raw TCP connection (netcat style): kept because libmagic knows it
    raw = t.session(("10.20.1.2", 40004), ("192.0.2.1", 9000), at=0.3)
    raw.client_send(pdf)
    raw.close()
    # unknown binary chatter: not an object
    junk = t.session(("10.20.1.2", 40005), ("192.0.2.1", 7000), at=0.4)
    junk.client_send(junk.rng.randbytes(3000))
    junk.close()
    pcap = tmp_path / "p.pcap"
    t.write(pcap)
    sensor, objs = _run(pcap)
    md5 = hashlib.md5(pdf).hexdigest()
    kinds = sorted((o.source, o.md5 == md5) for o in objs)
    assert kinds == [("http", True), ("tcp-stream", True)]
    assert dict(sensor.stats.app_protos) == {"http": 1, "tls": 1, "ssh": 1, "unknown": 2}


def test_every_flow_finishes_once(tmp_path: Path) -> None:
    t = S.Trace(seed=6)
    for i in range(20):
        s = t.session(("10.20.1.3", 41000 + i), ("192.0.2.2", 80), at=i * 0.01)
        s.http(S.http_request("GET", f"/{i}.txt", "y.example"),
               S.http_response(200, f"file {i}\n".encode() * 50, content_type="text/plain"))
        if i % 3:
            s.close()  # the others stay open until the end of the capture
    pcap = tmp_path / "p.pcap"
    t.write(pcap)
    ended = []
    objs: list[ContentObject] = []
    sensor = Sensor(Settings(), on_object=objs.append, on_flow_end=ended.append)
    with open_capture(pcap) as cap:
        sensor.run(cap.frames())
    sensor.finish()
    assert len(objs) == 20 and all(o.state == "CLOSED" for o in objs)
    assert sorted(f.uid for f in ended) == sorted({f.uid for f in ended}) and len(ended) == 20
    assert not sensor.applayer._apps and not sensor.applayer._closes
