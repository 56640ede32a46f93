#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/browser).
# Idempotent: does nothing when the browser is already there. Installs with apt-get
# only when running as root; otherwise says what to run. Never downloads a browser
# from anywhere else (playwright-core drives this system Chromium).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

if [ "$(id -u)" != "0" ]; then
  echo "ensure_chromium: $CHROMIUM is missing; install it with: sudo apt-get install -y chromium" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y --no-install-recommends chromium >/dev/null
fi

if [ ! -x "$CHROMIUM" ]; then
  echo "ensure_chromium: apt-get finished but $CHROMIUM is still missing" >&2
  exit 1
fi
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
