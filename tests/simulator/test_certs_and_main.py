"""The local CA (created once, reused, private keys 0600) and the `python -m local.simulator` entrypoint."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import requests
from cryptography import x509

from local.certs import ensure_ca

ROOT = Path(__file__).resolve().parents[2]


def test_ensure_ca_creates_a_ca_and_a_server_cert_for_loopback(tmp_path: Path) -> None:
    """The server certificate is signed by the CA and names 127.0.0.1 and localhost; keys are 0600."""
    files = ensure_ca(tmp_path / "ca")
    ca = x509.load_pem_x509_certificate(files.ca_pem.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert_pem.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert stat.S_IMODE(os.stat(files.server_key_pem).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca-key.pem").st_mode) == 0o600


def test_ensure_ca_reuses_valid_files_and_repairs_a_broken_server_cert(tmp_path: Path) -> None:
    """A second call keeps the same CA; a corrupted server cert is re-issued under the same CA."""
    first = ensure_ca(tmp_path)
    ca_bytes = first.ca_pem.read_bytes()
    server_bytes = first.server_cert_pem.read_bytes()
    second = ensure_ca(tmp_path)
    assert second.ca_pem.read_bytes() == ca_bytes
    assert second.server_cert_pem.read_bytes() == server_bytes
    first.server_cert_pem.write_text("garbage")
    third = ensure_ca(tmp_path)
    assert third.ca_pem.read_bytes() == ca_bytes
    assert third.server_cert_pem.read_bytes() != server_bytes


def test_module_entrypoint_prints_the_ready_line_and_serves(tmp_path: Path) -> None:
    """`python -m local.simulator --port 0` prints 'simulator listening on https://127.0.0.1:<port>'."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.simulator", "--port", "0", "--ca-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("simulator listening on https://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert requests.get(f"{url}/_sandbox/health", verify=str(tmp_path / "ca.pem"), timeout=5).json() == {
            "status": "ok"
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
