"""Tests of the DNS test infrastructure itself: the real bed (NSD + Unbound) and the fake resolver.

Queries are plain dnspython against explicit loopback addresses, so a failure here points at the bed, not kdiag.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from tests.dnsbed import BedError, DnsBed, build_zones
from tests.fakedns import FakeDns

Address = tuple[str, int]


def ask(where: Address | Any, name: str, rdtype: str, *, tcp: bool = False, edns: bool = True,
        timeout: float = 8.0) -> dns.message.Message:
    """One query to `where`: a (host, port) pair or the `resolvers` fixture's value."""
    host, port = where if isinstance(where, tuple) else (where.host, where.port)
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=1232)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, host, port=port, timeout=timeout)


def records(reply: dns.message.Message) -> list[str]:
    """The answer section as 'owner TYPE rdata' lines (no TTLs, which a cache counts down)."""
    return [f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rd}" for rrset in reply.answer for rd in rrset]


# -- both resolvers --------------------------------------------------------------------------------------------


def test_cname_chain_is_chased_across_zones(resolvers: Any) -> None:
    reply = ask(resolvers, "chain.example.com", "A")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.RA
    assert records(reply) == [
        "chain.example.com. CNAME my.example.com.",
        "my.example.com. CNAME 9e454bcfec.kongcloud.dev.",
        "9e454bcfec.kongcloud.dev. A 203.0.113.10",
    ]
    aaaa = resolvers.resolver().resolve("my.example.com", "AAAA")
    assert [rd.address for rd in aaaa] == ["2001:db8::10"]


@pytest.mark.parametrize(("name", "rdtype", "rcode"), [
    ("nothing.example.com", "A", dns.rcode.NXDOMAIN),
    ("x.my.example.com", "A", dns.rcode.NXDOMAIN),  # below a CNAME owner: nothing there
    ("www.example.com", "AAAA", dns.rcode.NOERROR),  # name exists, type does not: NODATA
    ("txtonly.example.com", "A", dns.rcode.NOERROR),
    ("wild.example.com", "A", dns.rcode.NOERROR),  # empty non-terminal above *.wild
])
def test_negative_answers_carry_the_zone_soa(resolvers: Any, name: str, rdtype: str,
                                             rcode: int) -> None:
    reply = ask(resolvers, name, rdtype)
    assert reply.rcode() == rcode
    assert reply.answer == []
    [soa] = reply.authority
    assert (str(soa.name), soa.rdtype) == ("example.com.", dns.rdatatype.SOA)
    assert soa.ttl <= 60  # RFC 2308: min(SOA TTL 300, SOA MINIMUM 60)


def test_cname_to_nowhere_is_nxdomain_with_the_chain(resolvers: Any) -> None:
    reply = ask(resolvers, "dangling.example.com", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert records(reply) == ["dangling.example.com. CNAME nothing.example.com."]
    assert [str(rrset.name) for rrset in reply.authority] == ["example.com."]


@pytest.mark.parametrize(("name", "rdtype", "rdata"), [
    ("foo.wild.example.com.", "A", "198.51.100.20"),
    ("a.b.wild.example.com.", "TXT", '"synthesised from *.wild.example.com."'),
])
def test_wildcard_answers_are_owned_by_the_query_name(resolvers: Any, name: str, rdtype: str,
                                                      rdata: str) -> None:
    reply = ask(resolvers, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert records(reply) == [f"{name} {rdtype} {rdata}"]


def test_cname_loop_is_servfail(resolvers: Any) -> None:
    assert ask(resolvers, "loop1.example.com", "A").rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("name", ["www.lame-ns.com", "www.dead-ns.com"])
def test_unservable_zones_are_servfail_quickly(resolvers: Any, name: str) -> None:
    started = time.monotonic()
    reply = ask(resolvers, name, "A")
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < 5


def test_generated_root_and_tlds_answer_like_real_ones(resolvers: Any) -> None:
    # A CAA climb reaches the TLD: it exists (NODATA), it is not NXDOMAIN.
    tld = ask(resolvers, "com", "CAA")
    assert (tld.rcode(), tld.answer, [str(r.name) for r in tld.authority]) == (dns.rcode.NOERROR, [], ["com."])
    nowhere = ask(resolvers, "www.example.org", "A")
    assert (nowhere.rcode(), [str(r.name) for r in nowhere.authority]) == (dns.rcode.NXDOMAIN, ["."])
    assert records(ask(resolvers, "ns1.bed.test", "A")) == ["ns1.bed.test. A 127.53.0.2"]


def test_big_caa_is_truncated_over_udp_and_whole_over_tcp(resolvers: Any) -> None:
    for edns in (True, False):
        udp = ask(resolvers, "big-caa.com", "CAA", edns=edns)
        assert udp.flags & dns.flags.TC
        assert udp.answer == []
        assert (udp.edns >= 0) == edns
        if edns:
            assert udp.payload == 1232
    tcp = ask(resolvers, "big-caa.com", "CAA", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.to_wire()) > 1232
    assert len(tcp.answer[0]) == 25
    # dnspython's resolver retries over TCP by itself on TC=1.
    caa = resolvers.resolver().resolve("big-caa.com", "CAA")
    assert 'letsencrypt.org' in {rd.value.decode() for rd in caa}


def test_upper_case_caa_tag_in_rfc3597_form_is_served(resolvers: Any) -> None:
    caa = resolvers.resolver().resolve("upper-caa.example.com", "CAA")
    assert [(rd.tag, rd.value) for rd in caa] == [(b"ISSUE", b"letsencrypt.org")]


def test_nameserver_arg_is_kdiags_addr_port_form(resolvers: Any) -> None:
    expected = "127.53.0.53" if resolvers.kind == "bed" else f"127.0.0.1:{resolvers.port}"
    assert resolvers.nameserver_arg == expected
    assert dataclasses.replace(resolvers, host="::1", port=5300).nameserver_arg == "[::1]:5300"
    assert dataclasses.replace(resolvers, host="::1", port=53).nameserver_arg == "::1"


# -- the fake's fault injection --------------------------------------------------------------------------------


def test_fake_override_rcodes(zones_dir: Path) -> None:
    overrides = {("my.example.com.", "CAA"): "SERVFAIL", ("www.example.com", "*"): "refused"}
    with FakeDns(zones_dir, overrides) as fake:
        assert ask(fake.address, "my.example.com", "CAA").rcode() == dns.rcode.SERVFAIL
        assert ask(fake.address, "my.example.com", "A").rcode() == dns.rcode.NOERROR  # other types untouched
        for rdtype in ("A", "TXT"):
            assert ask(fake.address, "www.example.com", rdtype, tcp=True).rcode() == dns.rcode.REFUSED


def test_fake_drop_makes_clients_time_out(zones_dir: Path) -> None:
    with FakeDns(zones_dir, {("www.example.com.", "A"): "DROP"}) as fake:
        for tcp in (False, True):
            with pytest.raises(dns.exception.Timeout):
                ask(fake.address, "www.example.com", "A", tcp=tcp, timeout=0.3)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = [fake.address[0]], fake.address[1], 0.5
        with pytest.raises(dns.resolver.LifetimeTimeout):
            resolver.resolve("www.example.com", "A")
        assert ask(fake.address, "www.example.com", "AAAA").rcode() == dns.rcode.NOERROR


def test_fake_truncate_overrides(zones_dir: Path) -> None:
    overrides = {("www.example.com.", "A"): "TRUNCATE", ("example.com.", "A"): "TRUNCATE-ALWAYS"}
    with FakeDns(zones_dir, overrides) as fake:
        assert ask(fake.address, "www.example.com", "A").flags & dns.flags.TC
        assert records(ask(fake.address, "www.example.com", "A", tcp=True)) == ["www.example.com. A 198.51.100.1"]
        assert ask(fake.address, "example.com", "A", tcp=True).flags & dns.flags.TC


def test_fake_delay(zones_dir: Path) -> None:
    with FakeDns(zones_dir, delay=0.5) as fake:
        with pytest.raises(dns.exception.Timeout):
            ask(fake.address, "www.example.com", "A", timeout=0.1)
        assert ask(fake.address, "www.example.com", "A", timeout=3).rcode() == dns.rcode.NOERROR


def test_fake_rejects_unknown_override_actions(zones_dir: Path) -> None:
    with pytest.raises(ValueError, match="SERVFIAL"):
        FakeDns(zones_dir, {("www.example.com.", "A"): "SERVFIAL"})


def test_fake_on_ipv6_loopback(zones_dir: Path) -> None:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with FakeDns(zones_dir, host="::1") as fake:
        assert fake.address[0] == "::1"
        assert records(ask(fake.address, "www.example.com", "A", tcp=True)) == ["www.example.com. A 198.51.100.1"]
        assert records(ask(fake.address, "www.example.com", "A")) == ["www.example.com. A 198.51.100.1"]


# -- the real bed ----------------------------------------------------------------------------------------------

NEW_RECORD = "fresh.example.com. 300 IN A 198.51.100.99\n"


def test_bed_listens_where_documented(dns_bed: DnsBed) -> None:
    assert dns_bed.resolver_address == ("127.53.0.53", 53)
    # The lame server is up and refuses our zones; nothing answers at the dead address.
    assert ask(("127.53.0.3", 53), "www.lame-ns.com", "A").rcode() == dns.rcode.REFUSED
    with pytest.raises(dns.exception.Timeout):
        ask(("127.53.0.9", 53), "www.dead-ns.com", "A", timeout=0.3)
    # ns1 and ns2 are the same authoritative server.
    for ns in ("127.53.0.2", "127.53.0.4"):
        reply = ask((ns, 53), "www.example.com", "A")
        assert reply.flags & dns.flags.AA and records(reply) == ["www.example.com. A 198.51.100.1"]


def test_bed_override_zone_changes_data_and_flushes_the_cache(dns_bed: DnsBed, zones_dir: Path) -> None:
    where = dns_bed.resolver_address
    assert ask(where, "fresh.example.com", "A").rcode() == dns.rcode.NXDOMAIN  # now in Unbound's negative cache
    text = (zones_dir / "example.com.zone").read_text() + NEW_RECORD
    with dns_bed.override_zone("example.com", text):
        assert records(ask(where, "fresh.example.com", "A")) == ["fresh.example.com. A 198.51.100.99"]
    assert ask(where, "fresh.example.com", "A").rcode() == dns.rcode.NXDOMAIN
    assert NEW_RECORD not in (zones_dir / "example.com.zone").read_text()


def test_bed_picks_up_a_new_zone_and_its_tld(dns_bed: DnsBed) -> None:
    text = """$ORIGIN fresh.org.
$TTL 300
@    SOA ns1.bed.test. hostmaster.fresh.org. 1 3600 600 86400 60
@    NS  ns2.bed.test.
www  A   198.51.100.77
sub  NS  lame.bed.test.
"""
    with dns_bed.override_zone("fresh.org", text):
        assert records(ask(dns_bed.resolver_address, "www.fresh.org", "A")) == ["www.fresh.org. A 198.51.100.77"]
        # A delegation written in the zone itself is honoured: sub.fresh.org. is lame.
        assert ask(dns_bed.resolver_address, "www.sub.fresh.org", "A").rcode() == dns.rcode.SERVFAIL
    assert ask(dns_bed.resolver_address, "www.fresh.org", "A").rcode() == dns.rcode.NXDOMAIN


def test_bed_nested_fixture_zone_is_delegated_from_its_parent(dns_bed: DnsBed) -> None:
    text = """$ORIGIN sub.example.com.
$TTL 300
@    SOA ns1.bed.test. hostmaster.example.com. 1 3600 600 86400 60
@    NS  lame.bed.test.
www  A   198.51.100.88
"""
    with dns_bed.override_zone("sub.example.com", text):
        # Delegated from example.com. to the lame server only, so not resolvable even though ns1 has the file.
        assert ask(dns_bed.resolver_address, "www.sub.example.com", "A").rcode() == dns.rcode.SERVFAIL


# -- zone generation (no daemons) ------------------------------------------------------------------------------


def test_build_zones_generates_root_tlds_and_delegations(zones_dir: Path) -> None:
    leaves = {dns.name.from_text(p.name.removesuffix(".zone")): p.read_text() for p in zones_dir.glob("*.zone")}
    generated, served = build_zones(leaves)
    assert {"com.", "dev.", "test.", "bed.test.", "."} <= {str(o) for o in generated}
    assert "example.com. 300 IN NS ns1.bed.test." in generated[dns.name.from_text("com.")]
    assert "dead-ns.com. 300 IN NS dead.bed.test." in generated[dns.name.from_text("com.")]
    # Zones delegated only to dead/lame servers are served by nobody.
    assert dns.name.from_text("dead-ns.com.") not in served
    assert dns.name.from_text("example.com.") in served


@pytest.mark.parametrize(("text", "error"), [
    ("$ORIGIN bad.org.\n@ SOA ns1.bed.test. h. 1 2 3 4 5\n@ NS ns.elsewhere.net.\n", "ns.elsewhere.net. unknown"),
    ("$ORIGIN bad.org.\n@ SOA ns1.bed.test. h. 1 2 3 4 5\n", "NS"),
    ("$ORIGIN bad.org.\n@ SOA ns1.bed.test. h. 1 2 3 4 5\n@ NS ns1.bed.test.\nwww A not-an-address\n", "bad.org.zone"),
])
def test_build_zones_rejects_fixtures_that_break_the_conventions(text: str, error: str) -> None:
    with pytest.raises(BedError, match=error):
        build_zones({dns.name.from_text("bad.org."): text})


def test_a_second_bed_waits_for_the_first_then_says_why(tmp_path: Path, dns_bed: DnsBed) -> None:
    # Port 53 on 127.53.0.x is machine-wide: a second bed must not start beside the running one.
    second = DnsBed(dns_bed.zones_dir, tmp_path, lock_timeout=0.5)
    with pytest.raises(BedError, match=f"another DNS bed \\(pid {os.getpid()}\\) is running"):
        second.start()
    assert ask(dns_bed.resolver_address, "www.example.com", "A").rcode() == dns.rcode.NOERROR
