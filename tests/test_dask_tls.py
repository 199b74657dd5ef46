"""The Dask cluster closed to whoever has no certificate: ``ocrpipe cluster-certs`` makes a CA and the
certificates, ``ocrpipe run`` and ``ocrpipe worker`` use them, and a plain ``tcp://`` address off this machine
is refused unless allowed. Loopback only: no test sends anything to another address."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
import pytest
from cryptography import x509

from conftest import TEST_PROFILE, drive, finished_jobs, make_pdf
from ocrpipe.cli import main
from ocrpipe.config import Settings
from ocrpipe.errors import ClusterError, ConfigError
from ocrpipe.cluster.remote import MARKER_FILE
from ocrpipe.engine.scheduler import Scheduler

import distributed  # the test extra installs it: CI runs these tests, never skips them
from distributed.security import Security

BIN = Path(sys.executable).parent
OFF_LOOPBACK = "tcp://192.0.2.10:8786"  # TEST-NET-1: never connected to (the guard below makes sure)
CERT_FILES = ["ca.pem", "client-key.pem", "client.pem", "scheduler-key.pem", "scheduler.pem",
              "worker-key.pem", "worker.pem"]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection this process tries to an address off this machine fails the test at once."""
    real = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            assert host == "localhost" or ipaddress.ip_address(host).is_loopback, f"a connection to {address} was tried"
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs") / "cluster"
    assert main(["cluster-certs", "--out", str(out), "--hosts", "127.0.0.1", "sched.example.org"]) == 0
    return out


def security_of(certs: Path) -> Security:
    """The scheduler's and workers' roles of a test cluster, from ocrpipe's files."""
    return Security(require_encryption=True, tls_ca_file=str(certs / "ca.pem"),
                    tls_scheduler_cert=str(certs / "scheduler.pem"), tls_scheduler_key=str(certs / "scheduler-key.pem"),
                    tls_worker_cert=str(certs / "worker.pem"), tls_worker_key=str(certs / "worker-key.pem"),
                    tls_client_cert=str(certs / "client.pem"), tls_client_key=str(certs / "client-key.pem"))


def tls_env(certs: Path, role: str) -> dict[str, str]:
    return {"DASK_TLS_CA_FILE": str(certs / "ca.pem"), "DASK_TLS_CERT": str(certs / f"{role}.pem"),
            "DASK_TLS_KEY": str(certs / f"{role}-key.pem")}


@pytest.fixture(scope="module")
def tls_cluster(certs: Path) -> Iterator[Any]:
    """One worker process behind a TLS scheduler on loopback."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, protocol="tls://",
                                  host="127.0.0.1", security=security_of(certs), dashboard_address=None,
                                  # Its HTTP server (health, metrics) on a free loopback port: 8787 may be
                                  # another test run's, and Dask's warning about it would fail this one.
                                  scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                                  silence_logs=50) as local:
        yield local


# -- the certificates -----------------------------------------------------------------------------------------

def test_cluster_certs_writes_a_ca_and_certificates_a_dask_security_accepts(certs: Path) -> None:
    assert sorted(p.name for p in certs.iterdir()) == CERT_FILES  # the CA's own key is never written
    if os.name != "nt":
        for key in certs.glob("*-key.pem"):
            assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    for role in ("scheduler", "worker", "client"):
        cert = x509.load_pem_x509_certificate((certs / f"{role}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "sched.example.org" in names.get_values_for_type(x509.DNSName)
        assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    security = security_of(certs)
    for role in ("scheduler", "worker"):
        assert isinstance(security.get_listen_args(role)["ssl_context"], ssl.SSLContext)
    for role in ("scheduler", "worker", "client"):
        assert isinstance(security.get_connection_args(role)["ssl_context"], ssl.SSLContext)


def test_cluster_certs_never_overwrites_a_set_in_use(certs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.read_bytes() for p in certs.iterdir()}
    assert main(["cluster-certs", "--out", str(certs)]) == 2
    err = capsys.readouterr().err
    assert f"{certs / 'ca.pem'} already exists" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in certs.iterdir()} == before


# -- who can reach the cluster ---------------------------------------------------------------------------------

async def identity(address: str, context: ssl.SSLContext) -> dict[str, Any]:
    """Ask a Dask server who it is over TLS with this context: the least a client can do once let in."""
    comm = await distributed.comm.connect(address, timeout=5, ssl_context=context)
    try:
        await comm.write({"op": "identity"})
        return await comm.read()
    finally:
        comm.abort()


def tls_context(certs: Path | None) -> ssl.SSLContext:
    """A client context that trusts any server; it shows ``certs``' client certificate, or none."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if certs is not None:
        context.load_cert_chain(certs / "client.pem", certs / "client-key.pem")
    return context


def test_without_the_cluster_certificates_no_client_reaches_the_scheduler_or_a_worker(
        tls_cluster: Any, certs: Path, tmp_path: Path) -> None:
    victim = tmp_path / "out" / "report.pdf"
    victim.parent.mkdir()
    victim.write_bytes(b"%PDF-1.4 someone's work")
    address = tls_cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:")
    # Someone else's certificates (a CA of their own, as Dask makes one): the handshake is refused.
    with pytest.raises((OSError, TimeoutError)):
        with distributed.Client(address, security=Security.temporary(), timeout=3, set_as_default=False) as client:
            client.submit(os.remove, str(victim), pure=False).result(timeout=3)
    # A plain connection to the TLS port gets nothing either.
    with pytest.raises((OSError, TimeoutError)):
        with distributed.Client(address.replace("tls://", "tcp://"), timeout=3, set_as_default=False) as client:
            client.submit(os.remove, str(victim), pure=False).result(timeout=3)
    assert victim.read_bytes() == b"%PDF-1.4 someone's work"
    # The cluster is up, and answers a client holding ocrpipe's certificates; its workers' ports, like the
    # scheduler's, refuse a TLS client that shows no certificate.
    with distributed.Client(address, security=security_of(certs), timeout=10, set_as_default=False) as client:
        assert client.submit(os.getpid, pure=False).result(timeout=30) != os.getpid()
        workers = list(client.scheduler_info()["workers"])
    assert workers
    for one in [address, *workers]:
        assert asyncio.run(identity(one, tls_context(certs)))["type"]  # with the client certificate: let in
        with pytest.raises(OSError):  # Dask's CommClosedError is one
            asyncio.run(identity(one, tls_context(None)))


def test_ocrpipe_runs_its_stages_on_a_tls_cluster_with_its_certificates(
        tls_cluster: Any, certs: Path, data_dir: Path, make_settings: Callable[..., Settings]) -> None:
    from ocrpipe.cluster.client import dask_pools

    address = tls_cluster.scheduler_address
    settings = make_settings(OCR_EXECUTOR=address, PREP_EXECUTOR=address, **tls_env(certs, "client"))
    (data_dir / "in").mkdir(parents=True)
    (data_dir / "in" / "doc.pdf").write_bytes(make_pdf(1))
    pools, clusters = dask_pools(settings)
    scheduler = Scheduler(settings, profile=TEST_PROFILE, executor_factory=_no_local_pool, stage_pools=pools)
    try:
        drive(scheduler, timeout=60)
    finally:
        scheduler.close(wait=True)
        for one in clusters:
            one.close()
    [job] = finished_jobs(data_dir)
    assert job["state"] == "DONE" and [p.name for p in (data_dir / "out").iterdir()] == ["doc.pdf"]


def test_certificates_of_another_cluster_stop_the_start_with_a_clear_error(
        tls_cluster: Any, tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    from ocrpipe.cluster.client import dask_pools

    other = tmp_path / "other-cluster"
    assert main(["cluster-certs", "--out", str(other)]) == 0
    address = tls_cluster.scheduler_address
    settings = make_settings(OCR_EXECUTOR=address, EXECUTOR_CONNECT_SECONDS="2", **tls_env(other, "client"))
    with pytest.raises(ClusterError) as refused:
        dask_pools(settings)
    assert f"the Dask scheduler at {address} does not answer (or refuses our certificate" in str(refused.value)


def _no_local_pool(workers: int) -> Any:
    raise AssertionError("a stage ran on a local pool instead of the cluster")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(procs: list[subprocess.Popen]) -> None:
    """Ctrl+C to each (the worker first), then kill what is left of them and of what they started."""
    tree = [child for proc in procs if proc.poll() is None
            for child in psutil.Process(proc.pid).children(recursive=True)]
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in reversed(procs):
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=15)
    for leftover in alive:
        leftover.kill()


def test_ocrpipe_worker_and_ocrpipe_run_as_processes_over_tls(
        certs: Path, fake_env: dict[str, str], data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    env = {**fake_env, "OCR_EXECUTOR": address, "PREP_EXECUTOR": address, "EXECUTOR_CONNECT_SECONDS": "20",
           "HEARTBEAT_SECONDS": "0.5", "OCR_BATCH_MAX_PAGES": "1"}
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], extra: dict[str, str], log: str) -> None:
        with open(logs / log, "wb") as out:
            procs.append(subprocess.Popen(argv, env={**env, **extra}, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT))

    def run_once() -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ocrpipe"), "run", "--once"], env={**env, **tls_env(certs, "client")},
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=120)

    try:
        start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
               "--dashboard-address", "127.0.0.1:0",
               "--protocol", "tls", "--tls-ca-file", str(certs / "ca.pem"), "--tls-cert", str(certs / "scheduler.pem"),
               "--tls-key", str(certs / "scheduler-key.pem")], {}, "scheduler.log")
        first = run_once()  # an empty run: it writes the data folder's marker, which the worker checks
        assert first.returncode == 0, first.stderr.decode()
        assert (data_dir / MARKER_FILE).is_file()
        start([str(BIN / "ocrpipe"), "worker", "--scheduler", address, "--data", str(data_dir), "--nthreads", "1"],
              tls_env(certs, "worker"), "worker.log")
        (data_dir / "in").mkdir(parents=True, exist_ok=True)
        (data_dir / "in" / "doc.pdf").write_bytes(make_pdf(1))
        second = run_once()
        assert second.returncode == 0, second.stderr.decode() + (logs / "worker.log").read_text()
        # The ocrpipe worker listens too: only for a client that shows a certificate of the cluster's CA.
        with distributed.Client(address, security=security_of(certs), timeout=10, set_as_default=False) as client:
            [worker] = client.scheduler_info()["workers"]
        assert worker.startswith("tls://") and asyncio.run(identity(worker, tls_context(certs)))["type"]
        with pytest.raises(OSError):
            asyncio.run(identity(worker, tls_context(None)))
    finally:
        stop(procs)
    [job] = finished_jobs(data_dir)
    assert job["state"] == "DONE" and [p.name for p in (data_dir / "out").iterdir()] == ["doc.pdf"]


# -- which addresses are accepted ------------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786",
                                     "tcp://127.0.1.1:8786"])
def test_a_plain_address_on_this_machine_needs_no_setting(make_settings: Callable[..., Settings],
                                                          address: str) -> None:
    assert make_settings(OCR_EXECUTOR=address).ocr_executor == address


@pytest.mark.parametrize("name", ["OCR_EXECUTOR", "PREP_EXECUTOR"])
@pytest.mark.parametrize("address", [OFF_LOOPBACK, "tcp://sched:8786", "tcp://0.0.0.0:8786", "ucx://10.0.0.5:13337"])
def test_a_plain_address_off_this_machine_is_refused_unless_allowed(
        make_settings: Callable[..., Settings], name: str, address: str) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(**{name: address})
    message = str(refused.value)
    assert message.startswith(f"{name}={address!r} is not valid") and "DASK_ALLOW_INSECURE=true" in message
    assert "tls://" in message and "ocrpipe cluster-certs" in message
    assert getattr(make_settings(**{name: address, "DASK_ALLOW_INSECURE": "true"}),
                   name.lower()) == address


class NoConnection(OSError):
    """Raised by the stand-ins for Dask's Client and Nanny: where a connection would have started."""


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Dask's Client and Nanny replaced: the addresses they were asked to connect to, and nothing sent."""
    tried: list[str] = []

    def refuse(address: str, *args: Any, **kwargs: Any) -> Any:
        tried.append(address)
        raise NoConnection("not connected in this test")

    monkeypatch.setattr(distributed, "Client", refuse)
    monkeypatch.setattr(distributed, "Nanny", refuse)
    return tried


@pytest.fixture
def own_logging() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("command", ["run", "worker"])
def test_run_and_worker_refuse_a_plain_address_off_this_machine_before_connecting(
        command: str, fake_env: dict[str, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], no_connection: list[str], own_logging: None) -> None:
    for name, value in fake_env.items():
        monkeypatch.setenv(name, value)
    data_dir.mkdir()
    (data_dir / MARKER_FILE).write_text('{"token": "t"}')
    if command == "run":
        monkeypatch.setenv("OCR_EXECUTOR", OFF_LOOPBACK)
        argv, setting = ["run", "--once"], "OCR_EXECUTOR"
    else:
        argv, setting = ["worker", "--scheduler", OFF_LOOPBACK, "--data", str(data_dir)], "--scheduler"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{setting}={OFF_LOOPBACK!r} is not valid" in err and "DASK_ALLOW_INSECURE=true" in err
    assert "Traceback" not in err and no_connection == []
    # Allowed explicitly: it goes on to connect (here to a stand-in, which refuses).
    monkeypatch.setenv("DASK_ALLOW_INSECURE", "true")
    assert main(argv) == 3
    assert no_connection == [OFF_LOOPBACK]


# -- the TLS settings ------------------------------------------------------------------------------------------

def test_a_tls_address_needs_the_certificate_settings(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(OCR_EXECUTOR="tls://sched:8786")
    message = str(refused.value)
    assert message.startswith("OCR_EXECUTOR='tls://sched:8786' is not valid")
    assert all(name in message for name in ("DASK_TLS_CA_FILE", "DASK_TLS_CERT", "DASK_TLS_KEY"))


def test_certificate_settings_are_checked_one_by_one(certs: Path, tmp_path: Path,
                                                     make_settings: Callable[..., Settings]) -> None:
    good = tls_env(certs, "client")
    settings = make_settings(OCR_EXECUTOR="tls://sched:8786", **good)
    assert settings.dask_tls_ca_file == certs / "ca.pem" and settings.dask_tls_key == certs / "client-key.pem"
    missing = tmp_path / "nowhere" / "ca.pem"
    cases = {
        "DASK_TLS_CA_FILE": (str(missing), f"DASK_TLS_CA_FILE={str(missing)!r} is not valid: cannot read it"),
        "DASK_TLS_CERT": (str(tmp_path), f"DASK_TLS_CERT={str(tmp_path)!r} is not valid: cannot read it"),
        "DASK_TLS_KEY": (str(certs / "ca.pem"), "DASK_TLS_KEY"),  # a certificate is not a key
    }
    for name, (value, expected) in cases.items():
        with pytest.raises(ConfigError) as refused:
            make_settings(OCR_EXECUTOR="tls://sched:8786", **{**good, name: value})
        assert expected in str(refused.value), str(refused.value)
    # All three or none: one alone names the others.
    with pytest.raises(ConfigError) as refused:
        make_settings(DASK_TLS_CA_FILE=good["DASK_TLS_CA_FILE"])
    assert "DASK_TLS_CERT" in str(refused.value) and "DASK_TLS_KEY" in str(refused.value)
    # With certificates, a plain address would send in clear what they are meant to protect.
    with pytest.raises(ConfigError) as refused:
        make_settings(OCR_EXECUTOR="tcp://127.0.0.1:8786", **good)
    assert "tls://" in str(refused.value)


def test_a_key_that_does_not_match_its_certificate_is_a_clear_error(
        certs: Path, make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(OCR_EXECUTOR="tls://sched:8786", **{**tls_env(certs, "client"),
                                                          "DASK_TLS_KEY": str(certs / "worker-key.pem")})
    assert "DASK_TLS_CERT" in str(refused.value) and "DASK_TLS_KEY" in str(refused.value)
