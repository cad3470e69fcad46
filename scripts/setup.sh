#!/usr/bin/env bash
# Set up tapsift on a Debian machine: the Debian packages it needs (installed only when
# missing), then a virtual environment in .venv with the project and its extras.
#   scripts/setup.sh            runtime only
#   scripts/setup.sh test       runtime + what the test suite needs
#   scripts/setup.sh bench      runtime + the reference tools of the benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

runtime_debs=(libmagic1 libmagic-mgc libpcap0.8 python3-venv python3-dev gcc antiword catdoc ethtool
  tesseract-ocr tesseract-ocr-chi-sim espeak-ng libarchive13)
# postgresql and redis-server: real servers for the fleet tests (tests/fleet_fixtures.py starts its own instances)
test_debs=(tcpdump tcpreplay iproute2 curl rsyslog rsyslog-gnutls openssl tshark chromium fonts-wqy-microhei systemd libpcap-dev
  fonts-dejavu-core libreoffice-writer-nogui libreoffice-impress-nogui postgresql redis-server)
bench_debs=(tcpflow)

want=("${runtime_debs[@]}")
case "$profile" in
  test) want+=("${test_debs[@]}") ;;
  bench) want+=("${test_debs[@]}" "${bench_debs[@]}") ;;
  runtime) ;;
  *) echo "setup.sh: unknown profile '$profile' (runtime, test, bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: tapsift needs Python >= 3.11 ($py is $("$py" --version 2>&1))" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
extras=""
case "$profile" in test|bench) extras="[test]" ;; esac
stamp=".venv/.tapsift-setup-$profile"
# re-install when the metadata or a C extension's source changed (pip builds the extensions in place)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ capture/_csum.c -nt "$stamp" ] || [ capture/csum.h -nt "$stamp" ] \
   || [ capture/_fastpath.c -nt "$stamp" ] || [ capture/decode_frame.h -nt "$stamp" ] \
   || [ capture/offload.c -nt "$stamp" ] || [ capture/offload.h -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -v -E '^WARNING: (Location|The directory)' || true
  .venv/bin/python -c 'import appliance, capture, reassembly'
  touch "$stamp"
fi
if ! .venv/bin/python -c 'import capture._fastpath, capture._csum' 2>/dev/null; then
  echo "setup: the C extensions did not build (no compiler?): tapsift runs on the slower pure-Python path" >&2
fi
# bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set (as on many CI hosts) every start
# would otherwise compile all ~100 modules again (~0.1 s per `tapsift read`)
.venv/bin/python -m compileall -q -j 0 appliance capture reassembly inspectors policies fingerprints webui >/dev/null || true
