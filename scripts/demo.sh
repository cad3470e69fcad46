#!/usr/bin/env bash
# Set everything up and run tapsift's main job on the bundled demo traffic: extract the
# content of a generated office capture, inspect it against the sample zone policy, store
# and print the alerts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh runtime
mkdir -p demo/out
if [ ! -s demo/out/demo.pcap ] || [ scripts/make_demo.py -nt demo/out/demo.pcap ]; then
  .venv/bin/python scripts/make_demo.py demo/out/demo.pcap
fi
rm -f demo/out/eve.json demo/out/alerts.db demo/out/alerts.db-wal demo/out/alerts.db-shm
.venv/bin/tapsift policy check policies/sample.yaml
.venv/bin/tapsift read demo/out/demo.pcap --policy policies/sample.yaml --store demo/out/alerts.db \
  --eve demo/out/eve.json
.venv/bin/python scripts/demo_report.py demo/out/eve.json
