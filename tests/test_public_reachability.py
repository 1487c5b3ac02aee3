"""public-reachability against Kong-like HTTPS servers on loopback, and DNS fixtures that publish addresses kdiag
must judge but never dial (fixtures/zones/privnet.com.zone, documentation addresses in kongcloud.dev.zone)."""

from __future__ import annotations

import json
import time

import pytest

from kdiag.model import Status
from kdiag.probes.http import Http
from kdiag.rules.public_reachability import public_reachability
from tests.fakedns import FakeDns
from tests.pki import leaf
from tests.support import kdiag_domain_inproc
from tests.tlsservers import (
    KONG_HEADERS_OFF,
    KONG_NO_ROUTE,
    NOT_KONG,
    KongLikeServer,
    Response,
    Staller,
    net_check,
    refusing_port,
)

GW = "9e454bcfec.kongcloud.dev"
NAME = "my.example.com"


class _Spy(Http):
    """Records every address the rule dials."""

    def __init__(self) -> None:
        super().__init__(timeout=0.5)
        self.dialled: list[str] = []

    def get(self, address, port, host):  # type: ignore[no-untyped-def,override]
        self.dialled.append(address)
        return super().get(address, port, host)


@pytest.fixture(scope="module")
def served(pki):  # type: ignore[no-untyped-def]
    return {NAME: leaf(pki.r11, NAME)}


def reach(fake_dns, server, **kw):  # type: ignore[no-untyped-def]
    return net_check(public_reachability, fake_dns.address, NAME, connect_to=(server.connect_to(NAME),), **kw).finding


def test_ok_when_kong_answers(fake_dns, served, pki):
    with KongLikeServer(served, default=pki.kong) as server:
        f = reach(fake_dns, server)
    assert (f.status, f.code) == (Status.PASS, "ok"), f.message
    assert "Kong 3.9.0" in f.message and "X-Kong-Request-Id" in f.message
    assert f.facts["ipv4"][0]["status"] == 200 and f.facts["ipv6"] == []
    assert f.facts["override"] == f"--connect-to {server.connect_to(NAME)}"


def test_sni_and_host_are_the_name(fake_dns, served, pki):
    with KongLikeServer(served, default=pki.kong) as server:
        reach(fake_dns, server)
        assert server.config.sni_seen == [NAME] and server.config.hosts_seen == [NAME]


@pytest.mark.parametrize("response", [KONG_NO_ROUTE, Response(404, "Not Found", (), KONG_NO_ROUTE.body)],
                         ids=["kong-headers", "headers-off"])
def test_no_route_passes_with_a_note(fake_dns, served, pki, response):
    with KongLikeServer(served, default=pki.kong, default_response=response) as server:
        f = reach(fake_dns, server)
    assert (f.status, f.code) == (Status.PASS, "no-route"), f.message
    assert "no Route matched with those values" in f.message and "reaches the gateway" in f.message


def test_not_kong_shows_the_server_header(fake_dns, served, pki):
    with KongLikeServer(served, default=pki.kong, default_response=NOT_KONG) as server:
        f = reach(fake_dns, server)
    assert (f.status, f.code) == (Status.WARN, "not-kong")
    assert "Server: nginx/1.25.3" in f.message
    assert f.remediation is not None and f.remediation.records[0].zone_line() == f"{NAME}. 300 IN CNAME {GW}."


def test_kong_with_headers_off_is_a_warning_never_a_failure(fake_dns, served, pki):
    with KongLikeServer(served, default=pki.kong, default_response=KONG_HEADERS_OFF) as server:
        f = reach(fake_dns, server)
    assert (f.status, f.code) == (Status.WARN, "not-kong")
    assert "Server: (none)" in f.message and "headers = off" in f.message


def test_connect_failed_when_refused(fake_dns):
    port = refusing_port()
    f = net_check(public_reachability, fake_dns.address, NAME,
                  connect_to=(f"{NAME}:443:127.0.0.1:{port}",)).finding
    assert (f.status, f.code) == (Status.FAIL, "connect-failed")
    assert f"127.0.0.1:{port} (IPv4): connection refused" in f.message
    assert f.facts["ipv4"][0]["outcome"] == "refused"
    assert f.remediation.commands[0][:3] == ("curl", "-sv", "-o")


def test_connect_failed_when_the_server_stalls(fake_dns):
    with Staller() as staller:
        started = time.monotonic()
        f = net_check(public_reachability, fake_dns.address, NAME,
                      connect_to=(f"{NAME}:443:127.0.0.1:{staller.port}",), timeout=0.3).finding
        assert time.monotonic() - started < 2
    assert (f.status, f.code) == (Status.FAIL, "connect-failed")
    assert "no TLS handshake within 0.3 s" in f.message


def test_a_trickling_response_cannot_hang_kdiag(fake_dns, served, pki):
    # Each byte arrives well within the socket timeout; the response as a whole has a deadline too.
    slow = Response(200, "OK", (("Server", "kong/3.9.0"),), b"x" * 50, trickle=0.05)
    with KongLikeServer(served, default_response=slow) as server:
        started = time.monotonic()
        f = reach(fake_dns, server, timeout=0.5)
        assert time.monotonic() - started < 2
    assert (f.status, f.code) == (Status.FAIL, "connect-failed")
    assert "no complete HTTP response within 0.5 s" in f.message


def test_connect_failed_reports_the_tls_alert(fake_dns, pki):
    with KongLikeServer({"other.example.com": leaf(pki.r11, "other.example.com")}) as server:
        f = reach(fake_dns, server)
    assert (f.status, f.code) == (Status.FAIL, "connect-failed")
    assert "alert handshake_failure" in f.message


def test_ipv4_and_ipv6_are_reported_separately(fake_dns, served, pki):
    # --connect-to sends the name to gw.test:PORT, --resolve gives that host both loopbacks (curl's order).
    # Only 127.0.0.1 listens: the IPv6 address fails, which alone breaks Let's Encrypt.
    with KongLikeServer(served, default=pki.kong) as server:
        f = net_check(public_reachability, fake_dns.address, NAME,
                      connect_to=(f"{NAME}:443:gw.test:{server.port}",),
                      resolve=(f"gw.test:{server.port}:127.0.0.1,[::1]",)).finding
    assert (f.status, f.code) == (Status.FAIL, "connect-failed")
    assert f.facts["ipv4"][0]["outcome"] == "ok"
    assert f.facts["ipv6"][0]["outcome"] == "refused"
    assert f"[::1]:{server.port} (IPv6)" in f.message and f"127.0.0.1:{server.port} answered" in f.message
    assert "tries IPv6 first" in f.remediation.summary


@pytest.mark.parametrize(("name", "shown", "deleted"), [
    ("lan.privnet.com", ["192.168.1.10 (private, RFC 1918)", "fd00::10 (unique local, RFC 4193)"],
     ["lan.privnet.com. 300 IN A 192.168.1.10", "lan.privnet.com. 300 IN AAAA fd00::10"]),
    ("loopback.privnet.com", ["127.0.0.1 (loopback)", "::1 (loopback)"],
     ["loopback.privnet.com. 300 IN A 127.0.0.1", "loopback.privnet.com. 300 IN AAAA ::1"]),
    ("docs.privnet.com", ["192.0.2.10 (documentation, RFC 5737)", "2001:db8::10 (documentation, RFC 3849)"],
     ["docs.privnet.com. 300 IN A 192.0.2.10", "docs.privnet.com. 300 IN AAAA 2001:db8::10"]),
    ("cgnat.privnet.com", ["100.64.0.1 (shared carrier-grade NAT, RFC 6598)"],
     ["cgnat.privnet.com. 300 IN A 100.64.0.1"]),
    ("via-cname.privnet.com", ["10.1.2.3 (private, RFC 1918)"], []),  # the A record is at the target
])
def test_private_addresses_are_named_and_never_dialled(resolvers, name, shown, deleted):
    spy = _Spy()
    f = net_check(public_reachability, (resolvers.host, resolvers.port), name, http=spy).finding
    assert (f.status, f.code) == (Status.FAIL, "private-address")
    for text in shown:
        assert text in f.message
    assert "kdiag did not connect" in f.message
    assert spy.dialled == []
    rem = f.remediation
    assert "cannot reach private networks" in rem.summary and "Dedicated Cloud Gateways" in rem.summary
    assert [r.zone_line() for r in rem.records] == [f"{name}. 300 IN CNAME {GW}."]
    assert sorted(_no_ttl(r.zone_line()) for r in rem.delete) == sorted(_no_ttl(d) for d in deleted)


def test_private_addresses_of_the_gateway_itself_are_not_the_customers_to_fix(resolvers):
    # my.example.com is a correct CNAME to the fixture gateway, whose own addresses are documentation ones
    spy = _Spy()
    f = net_check(public_reachability, (resolvers.host, resolvers.port), NAME, http=spy).finding
    assert (f.status, f.code) == (Status.FAIL, "private-address")
    assert "203.0.113.10 (documentation, RFC 5737)" in f.message and GW in f.message
    assert spy.dialled == []
    rem = f.remediation
    assert rem.records == () and rem.delete == ()  # adding the CNAME the name already has would fix nothing
    assert "contact Kong support" in rem.summary
    assert rem.command_lines() == ["kdiag konnect domain list"]


def _no_ttl(line: str) -> str:
    """TTLs count down in a caching resolver; compare everything else."""
    owner, _ttl, *rest = line.split()
    return " ".join([owner, *rest])


def test_connect_to_a_host_name_is_judged_like_dns(resolvers):
    spy = _Spy()
    f = net_check(public_reachability, (resolvers.host, resolvers.port), NAME, http=spy,
                  connect_to=(f"{NAME}:443:intranet.privnet.com:443",)).finding
    assert (f.status, f.code) == (Status.FAIL, "private-address")
    assert "(through intranet.privnet.com)" in f.message and "10.1.2.3" in f.message
    assert spy.dialled == []


@pytest.mark.parametrize(("name", "what"), [("noaddr.privnet.com", "has no A or AAAA record"),
                                            ("nothing.privnet.com", "does not exist (NXDOMAIN)")])
def test_no_address(resolvers, name, what):
    f = net_check(public_reachability, (resolvers.host, resolvers.port), name).finding
    assert (f.status, f.code) == (Status.FAIL, "no-address")
    assert what in f.message
    assert [r.zone_line() for r in f.remediation.records] == [f"{name}. 300 IN CNAME {GW}."]


def test_silent_resolver_is_an_error(zones_dir):
    with FakeDns(zones_dir, overrides={(f"{NAME}.", "*"): "DROP"}) as fake:
        f = net_check(public_reachability, fake.address, NAME, dns_timeout=0.3).finding
    assert (f.status, f.code) == (Status.ERROR, "lookup-failed")


# -- through the CLI --------------------------------------------------------------------------------------------


def _kdiag(fake_dns, *args: str, monkeypatch):  # type: ignore[no-untyped-def]
    return kdiag_domain_inproc(fake_dns, *args, monkeypatch=monkeypatch)


def test_cli_private_addresses_fail_with_exit_2_and_the_fix(fake_dns, monkeypatch):
    code, out = _kdiag(fake_dns, "lan.privnet.com", "--target", GW, "--only", "public-reachability",
                       monkeypatch=monkeypatch)
    assert code == 2
    assert "private-address" in out
    assert f"add:     lan.privnet.com. 300 IN CNAME {GW}." in out
    assert "delete:  lan.privnet.com. 300 IN A 192.168.1.10" in out


def test_cli_not_kong_is_exit_1(fake_dns, served, pki, monkeypatch):
    with KongLikeServer(served, default_response=NOT_KONG) as server:
        code, out = _kdiag(fake_dns, NAME, "--connect-to", server.connect_to(NAME), "--only",
                           "public-reachability", "-f", "json", monkeypatch=monkeypatch)
    check = json.loads(out)["checks"][0]
    assert (check["status"], check["code"]) == ("warn", "not-kong") and code == 1


def test_cli_no_route_is_exit_0(fake_dns, served, pki, monkeypatch):
    with KongLikeServer(served, default_response=KONG_NO_ROUTE) as server:
        code, out = _kdiag(fake_dns, NAME, "--connect-to", f"::127.0.0.1:{server.port}", "--only",
                           "public-reachability", monkeypatch=monkeypatch)
    assert "no-route" in out and code == 0


def test_without_an_http_client_the_rule_skips(fake_dns):
    from kdiag.context import Context
    from kdiag.engine import run_one
    from kdiag.probes.dns import Dns, Nameserver

    with Dns([Nameserver(*fake_dns.address)]) as dns:
        result = run_one(public_reachability, Context(domain=NAME, dns=dns))
    assert (result.status, result.finding.code) == (Status.SKIP, "not-configured")
