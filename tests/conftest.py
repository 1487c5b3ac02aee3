"""Shared pytest fixtures: the real DNS bed (NSD + Unbound), the in-process fake resolver, and both as `resolvers`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.resolver
import pytest

# Installed kdiag plugins must not change test results.
os.environ["KDIAG_NO_PLUGINS"] = "1"

# `tests` has no __init__.py, so pytest puts tests/ (not the repository) on sys.path; put the repository there
# too, so `tests.dnsbed` imports the same way under `pytest` and `python -m pytest`.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.dnsbed import DEFAULT_ZONES, BedError, DnsBed  # noqa: E402
from tests.fakedns import FakeDns  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "bed: uses the real NSD + Unbound DNS bed (root, nsd, unbound; see tests/install-bed.sh)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test that reaches the real bed, directly or through resolvers[bed], so `-m "not bed"` works
    # without relying on each author to remember the marker.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "dns_bed" in getattr(item, "fixturenames", ()) or (callspec and callspec.params.get("resolvers") == "bed"):
            item.add_marker(pytest.mark.bed)


@pytest.fixture(scope="session")
def zones_dir() -> Path:
    """fixtures/zones: one <origin>.zone per zone, served by both the bed and the fake."""
    return DEFAULT_ZONES


@pytest.fixture(scope="session")
def dns_bed(zones_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsBed]:
    """The real bed, one per session; Unbound at `dns_bed.resolver_address`.

    Skips where the bed cannot run, except under CI=true, where that is a failure. To change a zone for one test:
    `with dns_bed.override_zone("example.com", text): ...` (restarts the daemons; fixtures/zones is not touched).
    """
    reason = DnsBed.unavailable_reason()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the DNS bed cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    bed = DnsBed(zones_dir, tmp_path_factory.mktemp("dnsbed"))
    try:
        bed.start()
    except BedError as exc:
        pytest.fail(f"DNS bed did not start: {exc}", pytrace=False)
    yield bed
    bed.stop()


@pytest.fixture(scope="session")
def fake_dns(zones_dir: Path) -> Iterator[FakeDns]:
    """The in-process fake resolver over fixtures/zones, without overrides (build your own FakeDns for those)."""
    with FakeDns(zones_dir) as fake:
        yield fake


@pytest.fixture
def fake_dns_v6(zones_dir: Path) -> Iterator[FakeDns]:
    """The fake resolver on the IPv6 loopback (::1); the test is skipped on a machine without one."""
    try:
        fake = FakeDns(zones_dir, host="::1").start()
    except OSError as exc:  # pragma: no cover - a machine without IPv6 loopback
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        yield fake
    finally:
        fake.stop()


@dataclass(frozen=True)
class ResolverUnderTest:
    """Where a recursive resolver listens, in the forms tests need."""

    kind: str  # "bed" or "fake"
    host: str
    port: int

    @property
    def nameserver_arg(self) -> str:
        """The value for kdiag's `--nameserver ADDR[:PORT]`."""
        if self.port == 53:
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def resolver(self, lifetime: float = 5.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only this server (never the machine's own resolver)."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        return resolver


@pytest.fixture(params=["bed", "fake"])
def resolvers(request: pytest.FixtureRequest) -> ResolverUnderTest:
    """Each test runs once against the real bed's Unbound and once against the fake resolver."""
    if request.param == "bed":
        host, port = request.getfixturevalue("dns_bed").resolver_address
    else:
        host, port = request.getfixturevalue("fake_dns").address
    return ResolverUnderTest(request.param, host, port)


@pytest.fixture
def konnect_emu(fake_dns: FakeDns) -> Iterator[object]:
    """A Konnect API emulator on 127.0.0.1 (tests/konnect_emulator.py) that validates domains through the fake
    resolver; its control planes get the prefix 9e454bcfec (the gateway host in fixtures/zones/kongcloud.dev)."""
    from tests.konnect_emulator import KonnectEmulator

    with KonnectEmulator(resolver=fake_dns.address, prefix="9e454bcfec") as emu:
        yield emu


@pytest.fixture(scope="session")
def pki():  # type: ignore[no-untyped-def]
    """The test PKI (tests/pki.py): fake ISRG/LE R11, a second CA, staging, Kong's default; made once, in memory."""
    from tests.pki import Pki

    return Pki()


@pytest.fixture(autouse=True)
def _no_konnect_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A KONNECT_TOKEN/KONNECT_URL in the developer's shell must never send test traffic to the real Konnect."""
    monkeypatch.delenv("KONNECT_TOKEN", raising=False)
    monkeypatch.delenv("KONNECT_URL", raising=False)


@dataclass
class KdiagServer:
    """A `kdiag serve` process on an ephemeral loopback port (see the `kdiag_serve` fixture)."""

    proc: object  # subprocess.Popen[str]
    url: str  # http://127.0.0.1:PORT/

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://").rstrip("/")


@pytest.fixture
def kdiag_serve() -> Iterator[object]:
    """Start `python -m kdiag serve --listen 127.0.0.1:0 ARGS…` (pass --nameserver: never the system resolver);
    returns a KdiagServer once it listens. Every server started is stopped (SIGTERM, then SIGKILL) afterwards."""
    import re
    import select
    import signal
    import subprocess

    started: list[subprocess.Popen[str]] = []

    def start(*args: str, timeout: float = 20.0) -> KdiagServer:
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "KONNECT_TOKEN", "KONNECT_URL")}
        env["KDIAG_NO_PLUGINS"] = "1"
        proc = subprocess.Popen([sys.executable, "-m", "kdiag", "serve", "--listen", "127.0.0.1:0", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, env=env)
        started.append(proc)
        assert proc.stderr is not None
        # Its first stderr line: "kdiag: note: serving on http://127.0.0.1:PORT/ …", or an error.
        ready, _, _ = select.select([proc.stderr], [], [], timeout)
        line = proc.stderr.readline() if ready else f"(nothing on stderr within {timeout:g} s)\n"
        match = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
        if not match:
            proc.kill()
            rest = proc.communicate(timeout=5)
            raise AssertionError(f"kdiag serve did not start: {line}{rest[1]}")
        return KdiagServer(proc, match.group(1))

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
