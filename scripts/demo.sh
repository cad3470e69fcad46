#!/usr/bin/env bash
# Set everything up and run tapsift's main job on the bundled demo traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
mkdir -p demo/out
if [ ! -s demo/out/demo.pcap ] || [ scripts/make_demo.py -nt demo/out/demo.pcap ]; then
  .venv/bin/python scripts/make_demo.py demo/out/demo.pcap
fi
rm -f demo/out/eve.json
.venv/bin/tapsift read demo/out/demo.pcap --eve demo/out/eve.json
.venv/bin/python - <<'PY'
import json
rows = [json.loads(l) for l in open("demo/out/eve.json")]
files = [r for r in rows if r["event_type"] == "fileinfo"]
print(f"\n{len(files)} content objects extracted (demo/out/eve.json):")
for r in files:
    fi, h, t = r["fileinfo"], r.get("http", {}), r["tapsift"]
    where = h.get("hostname", "") + h.get("url", "") if h else r.get("app_proto", "")
    print(f"  {t['direction']:8s} {fi['state']:9s} {fi['size']:>9,d}  {t['sniffed_mime'][:28]:28s} "
          f"{fi['filename'][:28]:28s} {where[:60]}")
PY
