#!/usr/bin/env bash
# Set everything up and run the whole test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -n auto --dist loadgroup -q "$@"
