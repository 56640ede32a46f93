#!/usr/bin/env bash
# Installs checkov into its own tool venv (.venv-tools/) so its many dependencies never
# conflict with the app's pinned requirements. Idempotent: does nothing when the pinned
# version is already there. Called by `make test` before tests/infra/test_checkov.py.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv-tools"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [[ -x "${VENV}/bin/checkov" ]] && "${VENV}/bin/pip" show checkov 2>/dev/null | grep -qx "Version: ${CHECKOV_VERSION}"; then
  exit 0
fi

echo "Installing checkov ${CHECKOV_VERSION} into ${VENV} (one-off, takes a minute or two)..." >&2
"${PYTHON}" -m venv "${VENV}"
"${VENV}/bin/pip" install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
"${VENV}/bin/checkov" --version >&2
