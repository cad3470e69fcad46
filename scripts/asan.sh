#!/bin/sh
# Memory-safety check of the C extensions: build them with AddressSanitizer in a scratch copy
# of the tree and run the tests that drive them with hostile input (the two-path fuzz, bombs).
#   scripts/asan.sh [pytest args]      (after scripts/setup.sh test)
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
scratch=$(mktemp -d /tmp/tapsift-asan.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
git archive HEAD | tar -x -C "$scratch"
cd "$scratch"
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1" "$root/.venv/bin/python" setup.py build_ext --inplace >/dev/null
LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$scratch" \
  "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/capture/test_fastpath.py \
  tests/capture "$@"
