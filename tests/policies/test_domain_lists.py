"""Domain lists: the schema's ``domains`` list type, the ``domains`` metadata inspector, and
alerts end to end (TLS SNI, DNS queries and an HTTP upload to a listed domain)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.model import Direction, FlowRef
from appliance.model.content import ContentObject
from inspectors.base import InspectContext
from inspectors.domains import DomainInspector, metadata_object, normalize_domain
from inspectors.registry import build
from policies.schema import PolicyError, load_policy
from tools import synth as S

BIN = Path(sys.executable).parent

POLICY = """
suppression: {window_s: 0}
lists:
  file-sharing:
    type: domains
    domains: [dropbox.com, "*.wetransfer.com", bücher.example]
    weight: 2
  secrets:
    type: keywords
    keywords: [Project Nightjar]
profiles:
  sharing-sites:
    category: data-leak
    severity: medium
    inspect:
      - inspector: domains
        lists: file-sharing
  secret-to-sharing-site:
    category: data-leak/confidential
    severity: high
    threshold: {count: 2}
    inspect:
      - inspector: domains
        lists: file-sharing
        params: {match: objects}
      - inspector: keyword
        lists: secrets
policies:
  - name: uploads-to-sharing
    direction: upload
    protocol: [http, websocket]
    profiles: [secret-to-sharing-site]
  - name: sharing-metadata
    protocol: [tls, quic, dns]
    profiles: [sharing-sites]
"""


def _ref() -> FlowRef:
    return FlowRef("Cx", 1, "10.0.0.1", 40000, "10.0.0.2", 443, "TCP", 0, "")


def _inspector() -> DomainInspector:
    pol = load_policy(POLICY)
    (cfg,) = pol.profiles["sharing-sites"].configs
    insp = build(cfg)
    assert isinstance(insp, DomainInspector)
    return insp


def test_normalisation_and_suffix_match() -> None:
    assert normalize_domain("WWW.Dropbox.com.:443") == "www.dropbox.com"
    assert normalize_domain("Bücher.example") == "xn--bcher-kva.example"
    assert normalize_domain("[::1]:80") == "" and normalize_domain("a..b") == ""
    insp = _inspector()
    ctx = InspectContext()

    def names(host: str) -> list[str]:
        obj = ContentObject("F1", "http", Direction.TO_SERVER, _ref(), 0, 0, "", "", host=host)
        return [f.detail["domain"] for f in insp.inspect(obj, ctx)]

    assert names("www.dropbox.com") == ["dropbox.com"]
    assert names("dropbox.com") == ["dropbox.com"]
    assert names("notdropbox.com") == [] and names("dropbox.com.evil.example") == []
    assert names("we.wetransfer.com") == ["wetransfer.com"]
    assert names("shop.bücher.example") == ["xn--bcher-kva.example"]


def test_metadata_records_names() -> None:
    insp = _inspector()
    tls = metadata_object("F2", 0, _ref(), "tls", {"sni": "example.org", "subject": "C=US, CN=files.dropbox.com",
                                                     "subjectaltname": ["example.org"]})
    (f,) = list(insp.inspect(tls, InspectContext()))
    assert (f.detail["where"], f.detail["name"], f.score) == ("certificate", "files.dropbox.com", 2.0)
    dns = metadata_object("F3", 0, _ref(), "dns", {"type": "answer", "rrname": "x.example",
                                                     "answers": [{"rrtype": "CNAME", "rdata": "edge.dropbox.com"}]})
    assert [f.detail["name"] for f in insp.inspect(dns, InspectContext())] == ["edge.dropbox.com"]


def test_schema_rejects_bad_domains() -> None:
    bad = POLICY.replace('"*.wetransfer.com"', '"we transfer.com", "http://x.example/"')
    with pytest.raises(PolicyError) as err:
        load_policy(bad)
    msgs = [i.message for i in err.value.issues]
    assert any("'we transfer.com'" in m for m in msgs) and any("http://x.example/" in m for m in msgs)
    wrong = POLICY.replace("lists: secrets", "lists: file-sharing", 1)
    with pytest.raises(PolicyError, match="takes keywords lists"):
        load_policy(wrong)


def test_alerts_for_metadata_and_uploads(tmp_path: Path) -> None:
    t = S.Trace(seed=3)
    rng = random.Random(4)
    t.dns("10.20.1.5", "10.20.0.1", "www.dropbox.com", "162.125.1.18", at=0.0)
    s = t.session(("10.20.1.5", 40001), ("162.125.1.18", 443), at=0.1)
    s.client_send(S.tls_client_hello(rng, "www.dropbox.com"))
    s.server_send(S.tls_server_hello(rng))
    s.close()
    up = t.session(("10.20.1.5", 40002), ("198.51.100.7", 80), at=0.2)
    body, ctype = S.multipart_body(files=[("f", "plan.txt", "text/plain", b"Project Nightjar milestones\n")])
    up.http(S.http_request("POST", "/upload", "content.dropbox.com", body=body, content_type=ctype),
            S.http_response(200, b"ok", content_type="text/plain"))
    up.close()
    other = t.session(("10.20.1.5", 40003), ("198.51.100.8", 80), at=0.3)  # same secret, another host
    other.http(S.http_request("POST", "/upload", "intranet.example", body=body, content_type=ctype),
               S.http_response(200, b"ok", content_type="text/plain"))
    other.close()
    pcap, pol = tmp_path / "d.pcap", tmp_path / "p.yaml"
    t.write(pcap)
    pol.write_text(POLICY, encoding="utf-8")
    p = subprocess.run([str(BIN / "tapsift"), "read", str(pcap), "--policy", str(pol), "--eve", "-", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    alerts = [(e["app_proto"], e["alert"]["signature"]) for e in events if e["event_type"] == "alert"]
    assert sorted(alerts) == sorted([
        ("dns", "sharing-metadata/sharing-sites"),  # the query
        ("dns", "sharing-metadata/sharing-sites"),  # the answer
        ("tls", "sharing-metadata/sharing-sites"),
        ("http", "uploads-to-sharing/secret-to-sharing-site"),
    ]), alerts
    tls = next(e for e in events if e["event_type"] == "tls")
    assert tls["tls"]["sni"] == "www.dropbox.com" and tls["tls"]["ja3"]["hash"]
