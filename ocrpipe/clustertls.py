"""What a Dask scheduler address and its TLS files must be before anything connects: whoever reaches a Dask
scheduler or worker runs code on every worker, so a plain connection leaves this machine only when allowed
explicitly, and the certificate files are read and matched here, with the setting named when one is wrong."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from ocrpipe.errors import ConfigError

TLS_SETTINGS = ("DASK_TLS_CA_FILE", "DASK_TLS_CERT", "DASK_TLS_KEY")
INSECURE_SETTING = "DASK_ALLOW_INSECURE"


def tls_file(name: str, raw: str | None) -> Path | None:
    """The file a TLS setting names, which must be readable now: a typo found at start, not at connect."""
    if raw is None:
        return None
    path = Path(raw).expanduser().resolve()
    try:
        path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{name}={raw!r} is not valid: cannot read it ({reason})") from None
    return path


def check_tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> bool:
    """All three TLS files or none; that they are PEM and that the key is the certificate's. True: TLS is set."""
    if ca is None or cert is None or key is None:
        given = dict(zip(TLS_SETTINGS, (ca, cert, key), strict=False))
        present = [name for name, path in given.items() if path is not None]
        if present:
            missing = [name for name in TLS_SETTINGS if name not in present]
            raise ConfigError(f"{', '.join(present)} set without {' and '.join(missing)}: the three go together "
                              "(ocrpipe cluster-certs makes them)")
        return False
    import ssl  # here: every start reads the settings, few use TLS (ssl costs ~10 ms to import)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"DASK_TLS_CA_FILE={str(ca)!r} is not valid: expected a CA certificate in PEM format "
                          f"({exc})") from None
    try:
        # An empty password: an encrypted key is refused here, never asked for on a console nobody watches.
        context.load_cert_chain(str(cert), str(key), password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"DASK_TLS_CERT={str(cert)!r} and DASK_TLS_KEY={str(key)!r} are not valid: expected a "
                          f"PEM certificate and its own unencrypted private key ({exc})") from None
    return True


def is_loopback(host: str) -> bool:
    """Only what is written as this machine counts: a name is not looked up (no traffic to learn it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(name: str, address: str, *, tls: bool, allow_insecure: bool) -> None:
    """Refuse, before any connection, a scheduler address that would expose the cluster or cannot work."""
    if address == "local":
        return
    scheme = address.split("://", 1)[0].lower() if "://" in address else "tcp"  # Dask's default scheme
    if scheme == "inproc":
        return
    if scheme == "tls":
        if not tls:
            raise ConfigError(f"{name}={address!r} is not valid: a tls:// address needs {', '.join(TLS_SETTINGS[:2])} "
                              f"and {TLS_SETTINGS[2]} (make them with ocrpipe cluster-certs)")
        return
    if tls:
        raise ConfigError(f"{name}={address!r} is not valid: {', '.join(TLS_SETTINGS)} are set, so the scheduler "
                          "is reached over TLS: write its address as tls://host:port")
    try:
        host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    except ValueError:
        raise ConfigError(f"{name}={address!r} is not valid: expected a Dask scheduler address, "
                          "e.g. tls://host:8786") from None
    if not is_loopback(host) and not allow_insecure:  # tcp://, ucx://…: no encryption, no authentication
        raise ConfigError(f"{name}={address!r} is not valid: over a plain {scheme}:// connection anyone who reaches "
                          "the scheduler runs code on every worker; use a tls:// address with "
                          f"{', '.join(TLS_SETTINGS)} (make them with ocrpipe cluster-certs), "
                          f"or set {INSECURE_SETTING}=true on a network where only your machines reach it")
