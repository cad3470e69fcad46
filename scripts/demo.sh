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
rm -rf demo/out/eve.json demo/out/alerts.db* demo/out/console.db* demo/out/content.db* demo/out/packets \
  demo/out/evidence demo/out/fingerprints.db* demo/out/fingerprints.db.thumbs
# the console edits the policy it is given: give it a copy, not the repository's sample. The demo's
# fingerprint set lives in a library file the console manages (with the thumbnails it shows beside a
# matched image): the copy's list names that file instead of the sample's inline hash.
.venv/bin/python scripts/make_demo.py --library demo/out/fingerprints.db
sed -e 's|^    hashes: \["974c67374839487b:cceeaa9abbeece4c"\]$|    path: fingerprints.db|' \
  policies/sample.yaml > demo/out/policy.yaml
# the policy's text classifier ('models' in the model directory, here demo/out): trained on a
# generated labelled set
export TAPSIFT_MODEL_DIR="$PWD/demo/out"
if [ ! -d demo/out/models ] || ! ls demo/out/models/text-v*.json >/dev/null 2>&1; then
  .venv/bin/python bench/darkword_bench.py --make-ml-set demo/out/mlset --per-label 300 >/dev/null
  .venv/bin/tapsift ml train demo/out/mlset --model-dir demo/out/models
fi
.venv/bin/tapsift policy check demo/out/policy.yaml
# every object's text and metadata (content search, sessions, back-tests) and the packets (PCAPs)
.venv/bin/tapsift read demo/out/demo.pcap --policy demo/out/policy.yaml --store demo/out/alerts.db \
  --eve demo/out/eve.json --content-db demo/out/content.db --packet-store demo/out/packets
.venv/bin/python scripts/make_demo.py --evidence demo/out/evidence --content-db demo/out/content.db
.venv/bin/python scripts/demo_report.py demo/out/eve.json

# The console on localhost with the demo's alerts (Ctrl-C stops it). The first start creates
# the admin user and prints its one-time password. TAPSIFT_DEMO_NO_WEB=1 skips this step.
if [ -z "${TAPSIFT_DEMO_NO_WEB:-}" ]; then
  echo
  echo "Console: http://127.0.0.1:${TAPSIFT_DEMO_PORT:-8080}/  (Ctrl-C to stop)"
  exec .venv/bin/tapsift web --alert-db demo/out/alerts.db --policy demo/out/policy.yaml \
    --console-db demo/out/console.db --content-db demo/out/content.db --packet-store demo/out/packets \
    --fingerprint-library demo/out/fingerprints.db --evidence-dir demo/out/evidence \
    --port "${TAPSIFT_DEMO_PORT:-8080}"
fi
