"""A local certificate authority for the simulator's https endpoint.

MSAL insists on an https authority, so the Microsoft 365 simulator serves TLS. Rather
than disabling verification anywhere, the local stack generates its own CA once and
the service trusts exactly that CA (``LOCAL_CA_BUNDLE``) in local mode only.

``ensure_ca(ca_dir)`` is idempotent: files that exist and are still valid (CA not near
expiry, server certificate signed by that CA, covering 127.0.0.1 and localhost) are
reused, so restarting the simulator does not invalidate trust bundles already handed
to other processes. Writes are atomic (temp file + rename) because the host and the
simulator may start at the same time. Private keys are created with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_CA_NAME = "Local M365 Simulator CA"
_MIN_REMAINING = dt.timedelta(days=30)
_HOSTS_DNS = ("localhost",)
_HOSTS_IP = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class CaFiles:
    """Paths of the CA certificate (the trust bundle) and the server certificate and key."""

    ca_pem: Path
    server_cert_pem: Path
    server_key_pem: Path


def ensure_ca(ca_dir: str | os.PathLike[str]) -> CaFiles:
    """Return the CA and server certificate files in ``ca_dir``, creating them if needed."""
    folder = Path(ca_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = CaFiles(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    ca_key_path = folder / "ca-key.pem"

    ca_cert, ca_key = _load_valid_ca(files.ca_pem, ca_key_path)
    if ca_cert is None or ca_key is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _make_ca_cert(ca_key)
        _write_atomic(ca_key_path, _key_pem(ca_key), private=True)
        _write_atomic(files.ca_pem, ca_cert.public_bytes(serialization.Encoding.PEM))
        server_ok = False
    else:
        server_ok = _server_cert_valid(files.server_cert_pem, files.server_key_pem, ca_cert)
    if not server_ok:
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _make_server_cert(server_key, ca_cert, ca_key)
        _write_atomic(files.server_key_pem, _key_pem(server_key), private=True)
        _write_atomic(files.server_cert_pem, server_cert.public_bytes(serialization.Encoding.PEM))
    return files


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if private:
        os.chmod(path, 0o600)


def _load_valid_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None, None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None, None
    if cert.not_valid_after_utc - _now() < _MIN_REMAINING:
        return None, None
    if not _same_key(cert, key):
        return None, None
    return cert, key


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def _server_cert_valid(cert_path: Path, key_path: Path, ca_cert: x509.Certificate) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if cert.not_valid_after_utc - _now() < _MIN_REMAINING:
        return False
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _same_key(cert, key):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    names = set(san.get_values_for_type(x509.DNSName))
    return set(_HOSTS_IP) <= ips and set(_HOSTS_DNS) <= names


def _make_ca_cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server_cert(
    key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = _now()
    alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in _HOSTS_DNS]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _HOSTS_IP]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
