"""dns-cname-target through a real recursive path (NSD + Unbound) and the in-process fake resolver.

Every code has a case; the fixture names live in fixtures/zones/cname-cases.com.zone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kdiag.model import Status
from kdiag.rules.dns_cname_target import dns_cname_target
from tests.fakedns import FakeDns
from tests.support import GATEWAY, check, zone_lines

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
T = GATEWAY

# (name, --target, status, code, words the message must contain)
CASES = [
    ("ok.cname-cases.com", T, Status.PASS, "ok", ["9e454bcfec.kongcloud.dev", "203.0.113.10"]),
    ("chain.cname-cases.com", T, Status.PASS, "ok", ["ok.cname-cases.com -> 9e454bcfec.kongcloud.dev"]),
    ("ok.cname-cases.com", None, Status.PASS, "ok", ["9e454bcfec.kongcloud.dev"]),
    ("x.wildok.cname-cases.com", T, Status.PASS, "ok", ["9e454bcfec.kongcloud.dev"]),
    ("wrong.cname-cases.com", T, Status.FAIL, "wrong-target", ["www.cname-cases.com", "not 9e454bcfec"]),
    ("wrong.cname-cases.com", None, Status.FAIL, "wrong-target", ["a host under kongcloud.dev"]),
    ("relative.cname-cases.com", T, Status.FAIL, "relative-target",
     ["9e454bcfec.kongcloud.dev.cname-cases.com", "trailing dot"]),
    ("relative.cname-cases.com", None, Status.FAIL, "relative-target", ["trailing dot"]),
    ("dangling.cname-cases.com", None, Status.FAIL, "dangling", ["gone4242.kongcloud.dev", "does not resolve"]),
    ("dangling.cname-cases.com", "gone4242.kongcloud.dev", Status.FAIL, "dangling",
     ["does not resolve to any address"]),
    ("dangling.cname-cases.com", T, Status.FAIL, "wrong-target", ["does not resolve", "not 9e454bcfec"]),
    ("loop1.cname-cases.com", T, Status.FAIL, "loop", ["loop1.cname-cases.com -> loop2.cname-cases.com"]),
    ("long1.cname-cases.com", T, Status.FAIL, "loop", ["longer than 8 hops"]),
    ("cname-cases.com", T, Status.FAIL, "apex", ["zone apex"]),
    ("flat.cname-cases.com", T, Status.WARN, "flattened", ["203.0.113.10", "2001:db8::10", "no CNAME"]),
    ("flat.cname-cases.com", None, Status.FAIL, "stale-address", ["pass --target"]),
    ("stale.cname-cases.com", T, Status.FAIL, "stale-address", ["198.51.100.7 is not the gateway's"]),
    ("stale6.cname-cases.com", T, Status.FAIL, "stale-address", ["2001:db8::99 is not the gateway's"]),
    ("nothing.cname-cases.com", T, Status.FAIL, "missing", ["does not exist (NXDOMAIN)"]),
    ("txtonly.cname-cases.com", T, Status.FAIL, "missing", ["has no CNAME, A or AAAA"]),
    ("doubled.cname-cases.com", T, Status.FAIL, "missing",
     ["doubled.cname-cases.com.cname-cases.com is a CNAME", "appended"]),
    ("my.wild.cname-cases.com", T, Status.FAIL, "wildcard-mask", ["wildcard addresses 198.51.100.20"]),
    ("x.wildcn.cname-cases.com", T, Status.FAIL, "wildcard-mask", ["wildcard CNAME to www.cname-cases.com"]),
    ("deadend.cname-cases.com", T, Status.FAIL, "lookup-failed", ["SERVFAIL", "www.dead-ns.com"]),
    ("www.dead-ns.com", T, Status.FAIL, "lookup-failed", ["SERVFAIL"]),
    ("www.lame-ns.com", T, Status.FAIL, "lookup-failed", ["SERVFAIL"]),
]


@pytest.mark.parametrize(("name", "target", "status", "code", "words"), CASES,
                         ids=[f"{c[3]}:{c[0]}:{c[1] and 'target'}" for c in CASES])
def test_every_code(resolvers, name, target, status, code, words):
    # Given a fixture name, when the rule runs through the resolver under test
    result = check(dns_cname_target, resolvers.host, resolvers.port, name, target=target)
    # Then it reports the expected status and code, naming what it observed
    assert (result.status, result.finding.code) == (status, code), result.finding.message
    for word in words:
        assert word in result.finding.message
    if status is Status.FAIL:
        assert result.finding.remediation is not None and result.finding.remediation.summary


def test_wrong_target_fix_deletes_the_old_record_and_adds_the_right_one(resolvers):
    result = check(dns_cname_target, resolvers.host, resolvers.port, "wrong.cname-cases.com")
    assert zone_lines(result, "records") == ["wrong.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."]
    assert zone_lines(result, "delete") == ["wrong.cname-cases.com. 300 IN CNAME www.cname-cases.com."]


def test_relative_target_fix_has_the_trailing_dot(resolvers):
    result = check(dns_cname_target, resolvers.host, resolvers.port, "relative.cname-cases.com", target=None)
    assert zone_lines(result, "records") == ["relative.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."]
    assert zone_lines(result, "delete") == [
        "relative.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev.cname-cases.com."]


def test_stale_address_deletes_every_address_and_adds_the_cname(resolvers):
    result = check(dns_cname_target, resolvers.host, resolvers.port, "stale6.cname-cases.com")
    assert sorted(zone_lines(result, "delete")) == ["stale6.cname-cases.com. 300 IN A 203.0.113.10",
                                                    "stale6.cname-cases.com. 300 IN AAAA 2001:db8::99"]
    assert zone_lines(result, "records") == ["stale6.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."]
    assert "IPv6" in result.finding.remediation.summary


def test_doubled_owner_fix_names_the_doubled_record(resolvers):
    result = check(dns_cname_target, resolvers.host, resolvers.port, "doubled.cname-cases.com")
    assert zone_lines(result, "delete") == [
        "doubled.cname-cases.com.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."]
    assert zone_lines(result, "records") == ["doubled.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."]
    assert result.finding.facts["doubled_owner"] == "doubled.cname-cases.com.cname-cases.com"


def test_apex_suggests_a_subdomain(resolvers):
    result = check(dns_cname_target, resolvers.host, resolvers.port, "cname-cases.com")
    assert zone_lines(result, "records") == ["www.cname-cases.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."]


def test_missing_without_target_says_how_to_get_the_exact_record(resolvers):
    result = check(dns_cname_target, resolvers.host, resolvers.port, "nothing.cname-cases.com", target=None)
    assert result.finding.code == "missing"
    assert "--target" in result.finding.remediation.summary
    assert result.finding.remediation.records == ()


def test_resolver_silent_is_error_not_fail():
    # Given a resolver that drops every question for the name
    overrides = {("ok.cname-cases.com.", rdtype): "DROP" for rdtype in ("A", "AAAA", "CNAME", "SOA")}
    with FakeDns(ZONES, overrides=overrides) as fake:
        host, port = fake.address
        result = check(dns_cname_target, host, port, "ok.cname-cases.com", timeout=0.5)
    # Then kdiag says it could not tell, rather than blaming the domain
    assert result.status is Status.ERROR
    assert result.finding.code == "lookup-failed"
    assert "no answer" in result.finding.message


def test_refused_for_the_name_is_a_failure():
    overrides = {("ok.cname-cases.com.", "A"): "REFUSED"}
    with FakeDns(ZONES, overrides=overrides) as fake:
        result = check(dns_cname_target, *fake.address, "ok.cname-cases.com")
    assert (result.status, result.finding.code) == (Status.FAIL, "lookup-failed")
    assert "REFUSED" in result.finding.message
