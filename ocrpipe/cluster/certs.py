"""``ocrpipe cluster-certs``: a CA of the cluster's own and a certificate for each role (the Dask scheduler,
the workers, ``ocrpipe run``), made with ``cryptography`` as Dask's ``Security.temporary()`` does; the CA's key
is never written, so nobody can add a certificate to the set later."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrpipe.errors import ClusterError, ConfigError

ROLES = ("scheduler", "worker", "client")
CA_FILE = "ca.pem"
DEFAULT_DAYS = 1825
# Clocks of the machines differ: a certificate valid only from this second would be refused by one a bit behind.
BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class CertSet:
    folder: Path
    expires: datetime.date


def cert_files(out: Path) -> list[Path]:
    return [out / CA_FILE, *(out / name for role in ROLES for name in (f"{role}.pem", f"{role}-key.pem"))]


def make_cluster_certs(out: Path, *, hosts: Sequence[str] = (), days: int = DEFAULT_DAYS) -> CertSet:
    """Write ca.pem, and <role>.pem with <role>-key.pem (0600) for each role, into ``out``; never over a file."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise ClusterError("ocrpipe cluster-certs needs the cryptography package: "
                           "pip install 'ocrpipe[dask]'") from None
    taken = [path for path in cert_files(out) if os.path.lexists(path)]
    if taken:
        raise ConfigError(f"{taken[0]} already exists: a new set would lock out the machines that use it; "
                          "choose another --out, or move the old set away first")
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - BACKDATE, now + datetime.timedelta(days=days))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key, f"ocrpipe cluster CA {now:%Y-%m-%d %H:%M:%S}", valid)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(out / CA_FILE, ca.public_bytes(serialization.Encoding.PEM), private=False)
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _role_certificate(key.public_key(), role, ca_key, ca, ["localhost", "127.0.0.1", *hosts], valid)
        _write(out / f"{role}-key.pem", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()), private=True)
        _write(out / f"{role}.pem", cert.public_bytes(serialization.Encoding.PEM), private=False)
    return CertSet(out, valid[1].date())


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocrpipe cluster"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, sign_certificates: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(digital_signature=not sign_certificates, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=not sign_certificates,
                         key_cert_sign=sign_certificates, crl_sign=sign_certificates, encipher_only=False,
                         decipher_only=False)


def _ca_certificate(key: Any, common_name: str, valid: tuple[datetime.datetime, datetime.datetime]) -> Any:
    """Self-signed, and allowed to sign certificates but no further CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(sign_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def _role_certificate(public_key: Any, role: str, ca_key: Any, ca: Any, hosts: Sequence[str],
                      valid: tuple[datetime.datetime, datetime.datetime]) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    # Dask checks the CA, not the names (it turns host name checks off); the names still say where a
    # certificate belongs, for a person or a stricter client.
    names = x509.SubjectAlternativeName([_general_name(host) for host in dict.fromkeys(hosts)])
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (x509.CertificateBuilder().subject_name(_name(f"ocrpipe {role}")).issuer_name(ca.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(sign_certificates=False), critical=True)
            # Every role both listens and connects (the scheduler calls its workers back).
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(names, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))


def _general_name(host: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """A new file (never one already there, nor through a link); a key readable by its owner only."""
    mode = 0o600 if private else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists: choose another --out") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, mode)  # whatever the umask took away or let through: exactly this


def describe(made: CertSet) -> str:
    """Where each file goes, for the person who made them."""
    d = made.folder
    return (f"ocrpipe: a CA and certificates for a Dask cluster in {d}, valid until {made.expires}:\n"
            f"  {CA_FILE}  to every machine (DASK_TLS_CA_FILE; dask scheduler --tls-ca-file)\n"
            f"  scheduler.pem, scheduler-key.pem  to the scheduler's machine: dask scheduler --protocol tls "
            f"--tls-ca-file ca.pem --tls-cert scheduler.pem --tls-key scheduler-key.pem\n"
            f"  worker.pem, worker-key.pem  to each worker machine: DASK_TLS_CERT and DASK_TLS_KEY of ocrpipe worker\n"
            f"  client.pem, client-key.pem  to the machine of ocrpipe run: its DASK_TLS_CERT and DASK_TLS_KEY\n"
            "Keep the *-key.pem files readable by the account that runs ocrpipe only. The CA's own key was not kept:\n"
            "for a new machine copy the files it needs; to shut one out, make a new set and replace it everywhere.")
