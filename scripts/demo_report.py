"""Print what the demo run found: the content objects and the alerts (from its EVE file)."""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    files = [r for r in rows if r["event_type"] == "fileinfo"]
    alerts = [r for r in rows if r["event_type"] == "alert"]
    print(f"\n{len(files)} content objects extracted ({path}):")
    for r in files:
        fi, h, t = r["fileinfo"], r.get("http", {}), r["tapsift"]
        where = (h.get("hostname", "") + h.get("url", "")) if h else r.get("app_proto", "")
        print(f"  {t['direction']:8s} {fi['state']:9s} {fi['size']:>9,d}  {t['sniffed_mime'][:28]:28s} "
              f"{fi['filename'][:26]:26s} {where[:60]}")
    print(f"\n{len(alerts)} alerts:")
    for r in alerts:
        a, t = r["alert"], r["tapsift"]
        h = r.get("http", {})
        print(f"  [{a['severity']}] {a['signature']:40s} {a['category']:24s} "
              f"{t['src_zone']}→{t['dst_zone']}  {h.get('hostname', '')}{h.get('url', '')}")
        for f in t["findings"][:4]:
            d = f.get("detail", {})
            what = d.get("keyword") or d.get("proximity") or f["rule"]
            how = f" (matched after: {d['normalisation']})" if d.get("normalisation") not in (None, "none") else ""
            snip = f["evidence"][0]["snippet"] if f.get("evidence") else ""
            snip = " ".join(snip.split())[:70]
            print(f"      {f['inspector']}:{what}{how}  «{snip}»")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo/out/eve.json"))
