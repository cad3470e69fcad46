"""Alert and content-object factories for the output and store tests."""

from __future__ import annotations

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity

BASE_TS = 1_714_564_800_123_456_789  # 2024-05-01T12:00:00.123456789Z


def flow(i: int = 0, src_zone: str = "lan", dst_zone: str = "wan") -> FlowRef:
    return FlowRef(
        uid=f"Cflow{i}", flow_id=1_000_000 + i, src_ip=f"10.0.0.{i % 250 + 1}", src_port=40000 + i % 1000,
        dest_ip="192.0.2.80", dest_port=80, proto="TCP", vlan=10, iface="eth1",
        src_zone=src_zone, dst_zone=dst_zone,
    )


def content(i: int = 0, *, url: str = "/upload/plan.docx", host: str = "files.example.com",
            filename: str = "plan.docx", fl: FlowRef | None = None,
            direction: Direction = Direction.TO_SERVER) -> ContentObject:
    return ContentObject(
        id=f"F{i:06d}", source="http", direction=direction, flow=fl or flow(i), ts_ns=BASE_TS + i,
        size=12345, md5="0" * 31 + "1", sha256=f"{i:064x}", tx_id=0, kind="body",
        declared_mime="application/msword", sniffed_mime="application/msword", magic="Microsoft Word",
        filename=filename, url=url, host=host, method="POST", status=200, user_agent="curl/8.0",
    )


def alert(i: int = 0, *, snippet: str = "confidential merger plan", severity: Severity = Severity.HIGH,
          category: str = "data-leak", policy: str = "lan-to-wan", profile: str = "dlp",
          inspector: str = "keyword", rule: str = "secret-words", n_findings: int = 1,
          src_zone: str = "lan", dst_zone: str = "wan", detail: dict[str, str] | None = None,
          rules: tuple[str, ...] = ()) -> Alert:
    fl = flow(i, src_zone, dst_zone)
    findings = tuple(
        Finding(inspector=inspector, content_id=f"F{i:06d}", rule=rule if k == 0 else f"{rule}-{k}",
                score=3.5 + k, evidence=(Evidence(start=10, end=10 + len(snippet), snippet=snippet),),
                detail=detail if detail is not None else {"weight": "3.5", "list": "finance"})
        for k in range(n_findings)
    )
    return Alert(
        id=f"A{i:08d}", ts_ns=BASE_TS + i * 1_000_000, policy=policy, profile=profile, severity=severity,
        category=category, content_id=f"F{i:06d}", flow=fl, findings=findings, src_zone=src_zone,
        dst_zone=dst_zone, rules=rules,
    )
