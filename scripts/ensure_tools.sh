#!/usr/bin/env bash
# Tools the test suite needs beyond the app's venv, each in its own environment so their
# dependencies never conflict with the app's pins.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure_checkov.sh
