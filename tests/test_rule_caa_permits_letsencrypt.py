"""caa-permits-letsencrypt through a real recursive path (NSD + Unbound) and the in-process fake resolver.

Fixtures: fixtures/zones/caa-*.com.zone (one zone per case, checked as my.<zone>), badgw.dev, big-caa.com.
The fault cases a real server cannot produce on demand (SERVFAIL for CAA only, a silent resolver) use the
fake resolver's overrides.
"""

from __future__ import annotations

from pathlib import Path

import dns.rrset
import pytest

from kdiag.model import Status
from kdiag.rules.caa_permits_letsencrypt import caa_permits_letsencrypt
from tests.fakedns import FakeDns
from tests.support import check, zone_lines

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
LE = 'IN CAA 0 issue "letsencrypt.org"'

# (name, status, code, words the message must contain)
CASES = [
    ("my.caa-permit.com", Status.PASS, "permitted", ["at caa-permit.com (a parent of my.caa-permit.com)",
                                                     "letsencrypt.org"]),
    ("my.caa-wildonly.com", Status.PASS, "permitted", ["no issue records"]),
    ("upper-caa.example.com", Status.PASS, "permitted", ["letsencrypt.org"]),
    ("www.big-caa.com", Status.PASS, "permitted", ["letsencrypt.org"]),
    ("my.caa-none.com", Status.PASS, "no-caa", ["no CAA records"]),
    ("my.caa-forbid.com", Status.FAIL, "forbids", ["permits only digicert.com, sectigo.com",
                                                   "CAA record for caa-forbid.com prevents issuance"]),
    ("my.caa-upper.com", Status.FAIL, "forbids", ["sectigo.com"]),
    ("my.team.caa-deep.com", Status.FAIL, "forbids", ["at team.caa-deep.com (a parent of my.team.caa-deep.com)"]),
    ("gw.caa-target.com", Status.FAIL, "forbids", ["gw.badgw.dev, the CNAME target of gw.caa-target.com",
                                                   "CAA record for gw.caa-target.com prevents issuance"]),
    ("my.caa-critical.com", Status.FAIL, "critical-unknown", ["128 tbs"]),
    ("my.caa-critical1.com", Status.FAIL, "critical-unknown", ["1 somefuturetag"]),
    ("my.caa-nearmiss.com", Status.FAIL, "issuer-near-miss", ["LetsEncrypt.org"]),
    ("my.caa-neardot.com", Status.FAIL, "issuer-near-miss", ["letsencrypt.org."]),
    ("my.caa-malformed.com", Status.FAIL, "malformed", ["http-01, dns-01"]),
    ("my.caa-methods.com", Status.FAIL, "method-restricted", ["validationmethods=dns-01"]),
    ("my.caa-account.com", Status.FAIL, "account-bound", ["acme/acct/1234567"]),
    ("my.caa-paramcase.com", Status.WARN, "param-case-ignored", ["AccountURI"]),
    ("broken.caa-broken.com", Status.FAIL, "lookup-failed", ["SERVFAIL"]),
    ("my.nosuchtld", Status.FAIL, "lookup-failed", ["top-level domain nosuchtld does not exist"]),
]


@pytest.mark.parametrize(("name", "status", "code", "words"), CASES, ids=[f"{c[2]}:{c[0]}" for c in CASES])
def test_every_code(resolvers, name, status, code, words):
    result = check(caa_permits_letsencrypt, resolvers.host, resolvers.port, name)
    assert (result.status, result.finding.code) == (status, code), result.finding.message
    for word in words:
        assert word in result.finding.message
    if status is Status.FAIL:
        assert result.finding.remediation is not None


@pytest.mark.parametrize(("name", "records", "delete"), [
    ("my.caa-forbid.com", [f"caa-forbid.com. 3600 {LE}"], []),
    ("my.team.caa-deep.com", [f"team.caa-deep.com. 3600 {LE}"], []),
    ("my.caa-critical.com", ['caa-critical.com. 3600 IN CAA 0 tbs "unknown"'],
     ['caa-critical.com. 300 IN CAA 128 tbs "unknown"']),
    ("my.caa-nearmiss.com", [f"caa-nearmiss.com. 3600 {LE}"],
     ['caa-nearmiss.com. 300 IN CAA 0 issue "LetsEncrypt.org"']),
    ("my.caa-malformed.com", [f"caa-malformed.com. 3600 {LE}"],
     ['caa-malformed.com. 300 IN CAA 0 issue "letsencrypt.org; validationmethods=http-01, dns-01"']),
    ("my.caa-methods.com",
     ['caa-methods.com. 3600 IN CAA 0 issue "letsencrypt.org; validationmethods=dns-01,http-01,tls-alpn-01"'],
     ['caa-methods.com. 300 IN CAA 0 issue "letsencrypt.org; validationmethods=dns-01"']),
    ("my.caa-account.com", [f"caa-account.com. 3600 {LE}"], []),
])
def test_generated_fix_is_the_exact_record(resolvers, name, records, delete):
    result = check(caa_permits_letsencrypt, resolvers.host, resolvers.port, name)
    assert zone_lines(result, "records") == records
    assert zone_lines(result, "delete") == delete
    for line in records + delete:  # every generated line loads back as the record it claims to be
        owner, ttl, rdclass, rdtype, rdata = line.split(" ", 4)
        assert dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata).to_text() == line


def test_set_at_cname_target_is_the_providers_to_fix(resolvers):
    result = check(caa_permits_letsencrypt, resolvers.host, resolvers.port, "gw.caa-target.com")
    rem = result.finding.remediation
    assert rem.records == () and rem.delete == ()  # nothing the customer can add beside a CNAME
    assert "Kong support" in rem.summary
    assert result.finding.facts["at_cname_target"] is True
    assert result.finding.facts["records_owner"] == "gw.badgw.dev"


def test_validation_methods_option_changes_the_verdict(resolvers):
    result = check(caa_permits_letsencrypt, resolvers.host, resolvers.port, "my.caa-methods.com",
                   validation_methods=("dns-01",))
    assert (result.status, result.finding.code) == (Status.PASS, "permitted")


def _fake(overrides):
    return FakeDns(ZONES, overrides=overrides)


def test_servfail_at_the_relevant_level_forbids():
    with _fake({("caa-permit.com.", "CAA"): "SERVFAIL"}) as fake:
        result = check(caa_permits_letsencrypt, *fake.address, "my.caa-permit.com")
    assert (result.status, result.finding.code) == (Status.FAIL, "lookup-failed")
    assert "caa-permit.com failed: SERVFAIL" in result.finding.message
    assert result.finding.facts["failed_label"] == "caa-permit.com"


def test_refused_below_the_relevant_set_forbids():
    # The provider refuses CAA queries for the name itself (a real, common DNS-provider bug)
    with _fake({("my.caa-permit.com.", "CAA"): "REFUSED"}) as fake:
        result = check(caa_permits_letsencrypt, *fake.address, "my.caa-permit.com")
    assert (result.status, result.finding.code) == (Status.FAIL, "lookup-failed")
    assert "REFUSED" in result.finding.message


def test_error_above_the_relevant_set_is_ignored():
    # Boulder stops at the first non-empty set; a broken TLD above it does not matter
    with _fake({("com.", "CAA"): "SERVFAIL"}) as fake:
        result = check(caa_permits_letsencrypt, *fake.address, "my.caa-permit.com")
    assert (result.status, result.finding.code) == (Status.PASS, "permitted")


def test_silent_resolver_is_error():
    with _fake({("caa-permit.com.", "CAA"): "DROP"}) as fake:
        result = check(caa_permits_letsencrypt, *fake.address, "my.caa-permit.com", timeout=0.5)
    assert (result.status, result.finding.code) == (Status.ERROR, "lookup-failed")


def test_truncated_answer_is_retried_over_tcp():
    with _fake({("big-caa.com.", "CAA"): "TRUNCATE"}) as fake:
        result = check(caa_permits_letsencrypt, *fake.address, "www.big-caa.com")
    assert (result.status, result.finding.code) == (Status.PASS, "permitted")


def test_truncated_even_over_tcp_forbids():
    # Boulder: "response was truncated" is a failed lookup, which forbids issuance
    with _fake({("big-caa.com.", "CAA"): "TRUNCATE-ALWAYS"}) as fake:
        result = check(caa_permits_letsencrypt, *fake.address, "www.big-caa.com")
    assert (result.status, result.finding.code) == (Status.FAIL, "lookup-failed")
    assert "truncated" in result.finding.message
