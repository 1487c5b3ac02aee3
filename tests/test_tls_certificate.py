"""tls-certificate against real TLS servers on loopback: every code, through the rule and through the CLI.

Connections reach the servers only through --connect-to/--resolve; DNS comes from a named resolver (the fake,
or the real bed where the DNS answer matters). The trust store is the test PKI's roots, never the machine's,
except in the CLI tests, which use the system store plus --ca-bundle exactly as a user would.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from kdiag.model import Status
from kdiag.probes.tls import Tls, covers
from kdiag.rules.tls_certificate import tls_certificate
from tests.fakedns import FakeDns
from tests.pki import DAY, intermediate, leaf, now, root
from tests.support import kdiag_domain_inproc
from tests.tlsservers import KongLikeServer, Staller, net_check, refusing_port

GW = "9e454bcfec.kongcloud.dev"


@pytest.fixture(scope="module")
def gateway(pki):  # type: ignore[no-untyped-def]
    """One Kong-like gateway: a certificate per SNI (one per fault), Kong's default for any other name."""
    t = now()
    wildcard = leaf(pki.r11, "*.wild.example.com")
    certs = {
        "ok.example.com": leaf(pki.r11, "ok.example.com"),
        "r99.example.com": leaf(pki.r99, "r99.example.com"),
        "other.example.com": leaf(pki.other, "other.example.com"),
        "staging.example.com": leaf(pki.staging, "staging.example.com"),
        "mismatch.example.com": leaf(pki.r11, "api.example.org", "www.example.org"),
        "a.wild.example.com": wildcard,
        "a.b.wild.example.com": wildcard,
        "wild.example.com": wildcard,
        "expired.example.com": leaf(pki.r11, "expired.example.com", not_before=t - 100 * DAY,
                                    not_after=t - 10 * DAY),
        "future.example.com": leaf(pki.r11, "future.example.com", not_before=t + 5 * DAY),
        "soon.example.com": leaf(pki.r11, "soon.example.com", not_before=t - 85 * DAY, not_after=t + 5 * DAY),
        "short.example.com": leaf(pki.r11, "short.example.com", not_before=t - 3 * DAY,
                                  not_after=t + 3 * DAY + dt.timedelta(hours=16)),
        "short-late.example.com": leaf(pki.r11, "short-late.example.com", not_before=t - 5 * DAY,
                                       not_after=t + dt.timedelta(hours=16)),
        "nochain.example.com": leaf(pki.r11, "nochain.example.com", with_chain=False),
    }
    with KongLikeServer(certs, default=pki.kong) as server:
        yield server


def tls(gateway, fake_dns, pki, name, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("anchors", tuple(pki.anchors))
    return net_check(tls_certificate, fake_dns.address, name, connect_to=(gateway.connect_to(name),), **kw)


def test_ok_lets_encrypt_chain_recognised_by_authority_key_id(gateway, fake_dns, pki):
    result = tls(gateway, fake_dns, pki, "ok.example.com")
    f = result.finding
    assert (f.status, f.code) == (Status.PASS, "ok"), f.message
    assert "via R11" in f.message
    assert f.facts["match_basis"] == "authority-key-id"
    assert f.facts["sans"] == ["ok.example.com"]
    assert f.facts["address"] == f"127.0.0.1:{gateway.port}"
    assert f.facts["chain_captured"] is True
    assert f.facts["chain_source"] in ("_sslobj", "get_unverified_chain")  # even with an empty-subject leaf
    assert f.facts["chain_subjects"][1] == "CN=R11,O=Let's Encrypt,C=US"
    assert f.facts["not_after"].endswith("Z") and 79 <= f.facts["days_left"] <= 80
    assert f.facts["key_type"] == "ECDSA secp256r1"


def test_unknown_intermediate_falls_back_to_the_issuer_organisation(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "r99.example.com").finding
    assert (f.status, f.code) == (Status.PASS, "ok"), f.message
    assert f.facts["match_basis"] == "issuer-organization"


def test_injected_intermediate_table_decides_the_match(gateway, fake_dns, pki):
    # Without R11 in the table the leaf is still LE, but by its issuer's organisation.
    f = tls(gateway, fake_dns, pki, "ok.example.com", letsencrypt_intermediates={}).finding
    assert f.code == "ok" and f.facts["match_basis"] == "issuer-organization"


def test_other_issuer_is_named(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "other.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "not-letsencrypt")
    assert "Other DV CA" in f.message and "not Let's Encrypt" in f.message
    assert f.remediation is not None
    assert [r.zone_line() for r in f.remediation.records] == [f"other.example.com. 300 IN CNAME {GW}."]


def test_staging_is_its_own_failure(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "staging.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "staging")
    assert "(STAGING) Let's Encrypt" in f.message
    assert "acme-v02.api.letsencrypt.org" in f.remediation.summary


def test_kong_default_cert_means_no_certificate_attached_yet(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "new.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "kong-default-cert")
    assert f.facts["chain_source"] in ("_sslobj", "get_unverified_chain")  # a subject: the chain API works
    assert "CN=localhost, O=Kong" in f.message and "no certificate is attached to new.example.com" in f.message
    summary = f.remediation.summary
    assert "validation failed or is still pending" in summary
    assert "dns-cname-target" in summary and "caa-permits-letsencrypt" in summary


def test_hostname_mismatch_lists_what_the_certificate_covers(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "mismatch.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "hostname-mismatch")
    assert "api.example.org, www.example.org" in f.message and "mismatch.example.com" in f.message
    assert f.remediation.commands[0][:2] == ("openssl", "s_client")


@pytest.mark.parametrize(("name", "code"), [
    ("a.wild.example.com", "ok"),
    ("a.b.wild.example.com", "hostname-mismatch"),  # a wildcard stands for exactly one label
    ("wild.example.com", "hostname-mismatch"),  # ... and never for none
])
def test_wildcard_covers_exactly_one_label(gateway, fake_dns, pki, name, code):
    assert tls(gateway, fake_dns, pki, name).finding.code == code


def test_chain_fallback_reads_the_tls12_certificate_message(gateway):
    # Where no chain API works, the chain comes from a second handshake capped at TLS 1.2.
    from kdiag.probes.tls import _sniff_chain

    chain = _sniff_chain("127.0.0.1", gateway.port, "ok.example.com", 2.0)
    assert chain is not None and len(chain) == 2
    from cryptography import x509
    assert x509.load_der_x509_certificate(chain[1]).subject.rfc4514_string() == "CN=R11,O=Let's Encrypt,C=US"


def test_rfc9525_matcher():
    assert covers("*.example.com", "A.Example.COM.")
    assert not covers("w*.example.com", "www.example.com")  # no partial wildcards
    assert not covers("*.com", "example.com")
    assert not covers("a.*.example.com", "a.b.example.com")


def test_expired(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "expired.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "expired")
    assert "expired on" in f.message and "10 days ago" in f.message
    assert "Renewal has failed" in f.remediation.summary


def test_not_yet_valid(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "future.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "not-yet-valid")
    assert "not valid before" in f.message
    assert ("date", "-u") in f.remediation.commands


def test_expiring_soon_says_when_renewal_should_have_happened(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "soon.example.com").finding
    assert (f.status, f.code) == (Status.WARN, "expiring-soon")
    # 90-day certificate, 5 days left: renewal was due 30 days before the end, i.e. 25 days ago.
    assert "valid for 90 days" in f.message and "30 days before the end" in f.message
    assert "(25 days ago)" in f.message
    assert f.facts["renew_by"].endswith("Z")


def test_expiry_threshold_is_an_option(gateway, fake_dns, pki):
    assert tls(gateway, fake_dns, pki, "soon.example.com", expiry_warn_days=3).finding.code == "ok"
    assert tls(gateway, fake_dns, pki, "ok.example.com", expiry_warn_days=85).finding.code == "expiring-soon"


def test_short_lived_certificates_warn_only_past_their_renewal_point(gateway, fake_dns, pki):
    # A 160-hour certificate always has fewer than 14 days left; it warns once less than 1/3 remains.
    assert tls(gateway, fake_dns, pki, "short.example.com").finding.code == "ok"
    assert tls(gateway, fake_dns, pki, "short-late.example.com").finding.code == "expiring-soon"


def test_incomplete_chain_names_the_missing_intermediate(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "nochain.example.com").finding
    assert (f.status, f.code) == (Status.FAIL, "incomplete-chain")
    assert "'R11' is missing" in f.message
    assert "fullchain.pem" in f.remediation.summary
    assert f.facts["missing_issuer"] == "R11"


def test_untrusted_when_the_root_is_not_in_the_store(gateway, fake_dns, pki):
    f = tls(gateway, fake_dns, pki, "ok.example.com", anchors=(pki.other_root.cert,)).finding
    assert (f.status, f.code) == (Status.FAIL, "untrusted")
    assert "does not validate to a trusted root" in f.message
    assert "--ca-bundle" in f.remediation.summary


def test_untrusted_lookalike_root(fake_dns, pki):
    # A chain to another key named "ISRG Root X1" is complete (it ends at a well-known root name) but untrusted.
    fake_isrg = root("ISRG Root X1", "Internet Security Research Group")
    r11 = intermediate(fake_isrg, "R11", "Let's Encrypt")
    with KongLikeServer({"my.example.com": leaf(r11, "my.example.com")}) as server:
        f = net_check(tls_certificate, fake_dns.address, "my.example.com",
                      connect_to=(server.connect_to("my.example.com"),), anchors=tuple(pki.anchors)).finding
    assert (f.status, f.code) == (Status.FAIL, "untrusted")


def test_handshake_failed_reports_the_alert(fake_dns, pki):
    # No default certificate: an unknown SNI is refused with a handshake_failure alert.
    with KongLikeServer({"other.example.com": leaf(pki.r11, "other.example.com")}) as server:
        f = net_check(tls_certificate, fake_dns.address, "my.example.com",
                      connect_to=(server.connect_to("my.example.com"),), anchors=tuple(pki.anchors)).finding
    assert (f.status, f.code) == (Status.FAIL, "handshake-failed")
    assert "alert handshake_failure" in f.message
    assert f.facts["alert"] == "handshake_failure"


def test_plain_http_on_the_tls_port_is_a_handshake_failure(fake_dns):
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with listener:
        f = net_check(tls_certificate, fake_dns.address, "my.example.com",
                      connect_to=(f"my.example.com:443:127.0.0.1:{listener.getsockname()[1]}",)).finding
        thread.join(timeout=5)
    assert (f.status, f.code) == (Status.FAIL, "handshake-failed")
    assert "does not speak TLS" in f.message


def test_a_staller_cannot_hang_kdiag(fake_dns, pki):
    with Staller() as staller:
        started = time.monotonic()
        f = net_check(tls_certificate, fake_dns.address, "my.example.com",
                      connect_to=(f"my.example.com:443:127.0.0.1:{staller.port}",), timeout=0.3).finding
        elapsed = time.monotonic() - started
    assert (f.status, f.code) == (Status.FAIL, "handshake-failed")
    assert "accepted TCP but never answered the TLS handshake" in f.message
    assert elapsed < 2


def test_unreachable_when_nothing_listens(fake_dns):
    port = refusing_port()
    f = net_check(tls_certificate, fake_dns.address, "my.example.com",
                  connect_to=(f"my.example.com:443:127.0.0.1:{port}",)).finding
    assert (f.status, f.code) == (Status.FAIL, "unreachable")
    assert "connection refused" in f.message
    assert f"my.example.com:443:127.0.0.1:{port}" in f.remediation.command_lines()[0]


def test_resolve_sends_the_handshake_to_the_given_address(gateway, fake_dns, pki):
    f = net_check(tls_certificate, fake_dns.address, "ok.example.com",
                  resolve=(f"*:{gateway.port}:127.0.0.1",),
                  connect_to=(f"::ok.example.com:{gateway.port}",), anchors=tuple(pki.anchors)).finding
    assert f.code == "ok", f.message
    assert f.facts["override"].startswith("--connect-to ::ok.example.com")


class _Spy(Tls):
    def __init__(self) -> None:
        super().__init__(timeout=0.5, system_store=False)
        self.dialled: list[str] = []

    def handshake(self, address, port, sni):  # type: ignore[no-untyped-def,override]
        self.dialled.append(address)
        return super().handshake(address, port, sni)


@pytest.mark.parametrize("name", ["loopback.privnet.com", "lan.privnet.com", "docs.privnet.com",
                                  "via-cname.privnet.com"])
def test_non_public_addresses_from_dns_are_never_dialled(resolvers, name):
    spy = _Spy()
    f = net_check(tls_certificate, (resolvers.host, resolvers.port), name, tls=spy).finding
    assert (f.status, f.code) == (Status.SKIP, "no-address")
    assert "never dials" in f.message
    assert spy.dialled == []


def test_no_address_when_the_name_does_not_exist(resolvers):
    f = net_check(tls_certificate, (resolvers.host, resolvers.port), "nothing-here.privnet.com").finding
    assert (f.status, f.code) == (Status.SKIP, "no-address")
    assert "NXDOMAIN" in f.message


def test_silent_resolver_is_an_error_not_a_failure(zones_dir):
    with FakeDns(zones_dir, overrides={("my.example.com.", "*"): "DROP"}) as fake:
        f = net_check(tls_certificate, fake.address, "my.example.com", dns_timeout=0.3).finding
    assert (f.status, f.code) == (Status.ERROR, "lookup-failed")


def test_without_a_tls_client_the_rule_skips(fake_dns):
    from kdiag.context import Context
    from kdiag.engine import run_one
    from kdiag.probes.dns import Dns, Nameserver

    with Dns([Nameserver(*fake_dns.address)]) as dns:
        result = run_one(tls_certificate, Context(domain="my.example.com", dns=dns))
    assert (result.status, result.finding.code) == (Status.SKIP, "not-configured")


# -- through the CLI: the "Done when" ------------------------------------------------------------------


def _kdiag(fake_dns, *args: str, monkeypatch):  # type: ignore[no-untyped-def]
    return kdiag_domain_inproc(fake_dns, *args, monkeypatch=monkeypatch)


@pytest.fixture(scope="module")
def ca_pem(pki, tmp_path_factory):  # type: ignore[no-untyped-def]
    return str(pki.anchors_pem(tmp_path_factory.mktemp("ca") / "ca.pem"))


def test_cli_all_four_rules_pass_before_cutover(fake_dns, pki, ca_pem, monkeypatch):
    with KongLikeServer({"my.example.com": leaf(pki.r11, "my.example.com")}, default=pki.kong) as server:
        res = _kdiag(fake_dns, "my.example.com", "--target", GW, "--connect-to", server.connect_to("my.example.com"),
                     "--ca-bundle", ca_pem, "-f", "json", monkeypatch=monkeypatch)
    doc = json.loads(res.output)
    codes = {c["id"]: (c["status"], c["code"]) for c in doc["checks"]}
    assert codes["dns-cname-target"] == ("pass", "ok")
    assert codes["caa-permits-letsencrypt"][0] == "pass"
    assert codes["tls-certificate"] == ("pass", "ok")
    assert codes["public-reachability"] == ("pass", "ok")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("served", "code", "exit_code", "fix"), [
    ("kong", "kong-default-cert", 2, "validation failed or is still pending"),
    ("expired", "expired", 2, "Renewal has failed"),
    ("nochain", "incomplete-chain", 2, "fullchain.pem"),
    ("soon", "expiring-soon", 1, "Renewal is overdue"),
])
def test_cli_faults_give_code_fix_and_exit_code(fake_dns, pki, ca_pem, monkeypatch, served, code, exit_code, fix):
    t = now()
    chains = {
        "kong": {},
        "expired": {"my.example.com": leaf(pki.r11, "my.example.com", not_before=t - 95 * DAY,
                                           not_after=t - 5 * DAY)},
        "nochain": {"my.example.com": leaf(pki.r11, "my.example.com", with_chain=False)},
        "soon": {"my.example.com": leaf(pki.r11, "my.example.com", not_before=t - 80 * DAY,
                                        not_after=t + 10 * DAY)},
    }
    with KongLikeServer(chains[served], default=pki.kong) as server:
        res = _kdiag(fake_dns, "my.example.com", "--target", GW, "--connect-to", server.connect_to("my.example.com"),
                     "--ca-bundle", ca_pem, monkeypatch=monkeypatch)
    assert f"tls-certificate[{code}]" in res.output or f" {code} " in res.output, res.output
    assert fix in " ".join(res.output.split())
    assert res.exit_code == exit_code, res.output


def test_cli_without_ca_bundle_the_fake_chain_is_untrusted(fake_dns, pki, monkeypatch):
    with KongLikeServer({"my.example.com": leaf(pki.r11, "my.example.com")}) as server:
        res = _kdiag(fake_dns, "my.example.com", "--connect-to", server.connect_to("my.example.com"),
                     "--only", "tls-certificate", "-f", "json", monkeypatch=monkeypatch)
    check = json.loads(res.output)["checks"][0]
    assert check["code"] == "untrusted" and "system (" in check["facts"]["trust_store"]
    assert res.exit_code == 2


def test_cli_expiry_warn_days_flag(fake_dns, pki, ca_pem, monkeypatch):
    with KongLikeServer({"my.example.com": leaf(pki.r11, "my.example.com")}) as server:
        res = _kdiag(fake_dns, "my.example.com", "--connect-to", server.connect_to("my.example.com"),
                     "--ca-bundle", ca_pem, "--expiry-warn-days", "85", "--only", "tls-certificate",
                     monkeypatch=monkeypatch)
    assert "expiring-soon" in res.output and res.exit_code == 1


@pytest.mark.parametrize("args", [["--connect-to", "my.example.com:443:127.0.0.1"],
                                  ["--connect-to", "my.example.com:443:::1:8443"],
                                  ["--resolve", "my.example.com:443:not-an-ip"],
                                  ["--ca-bundle", "/nonexistent/ca.pem"]])
def test_cli_bad_flags_are_usage_errors(fake_dns, args, capsys):
    from kdiag.cli import main

    host, port = fake_dns.address
    with pytest.raises(SystemExit) as exc:
        main(["domain", "my.example.com", "--nameserver", f"{host}:{port}", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 3
    assert err.startswith("kdiag: error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"", b"just text\n",
                                     b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
                                     b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"])
def test_a_ca_bundle_without_a_certificate_is_a_usage_error_before_any_check(fake_dns, tmp_path, content, capsys):
    from kdiag.cli import main

    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(content)
    host, port = fake_dns.address
    with pytest.raises(SystemExit) as exc:
        main(["domain", "my.example.com", "--nameserver", f"{host}:{port}", "--ca-bundle", str(bundle)])
    err = capsys.readouterr().err
    assert exc.value.code == 3
    assert err == f"kdiag: error: --ca-bundle: {bundle} holds no PEM certificate\n"
