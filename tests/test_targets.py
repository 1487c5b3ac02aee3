"""--connect-to / --resolve: curl's syntax and meaning, and the safety rule on DNS-published addresses."""

from __future__ import annotations

import pytest

from kdiag.errors import UsageError
from kdiag.probes.dns import Dns, Nameserver
from kdiag.targets import (
    ConnectTo,
    ResolveEntry,
    describe_address,
    destination,
    is_public,
    parse_connect_to,
    parse_resolve,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("my.example.com:443:127.0.0.1:8443", ConnectTo("my.example.com", 443, "127.0.0.1", 8443, "")),
    ("::127.0.0.1:8443", ConnectTo(None, None, "127.0.0.1", 8443, "")),  # any host, any port
    ("my.example.com:443:gw.example.net:", ConnectTo("my.example.com", 443, "gw.example.net", None, "")),
    ("My.Example.COM.:443::8443", ConnectTo("my.example.com", 443, None, 8443, "")),  # keep the host
    ("[2001:db8::1]:443:[::1]:8443", ConnectTo("2001:db8::1", 443, "::1", 8443, "")),
    (":::", ConnectTo(None, None, None, None, "")),
])
def test_parse_connect_to(text, expected):
    parsed = parse_connect_to(text)
    assert (parsed.host, parsed.port, parsed.to_host, parsed.to_port) == \
        (expected.host, expected.port, expected.to_host, expected.to_port)


@pytest.mark.parametrize(("text", "why"), [
    ("my.example.com:443:127.0.0.1", "expected HOST1:PORT1:HOST2:PORT2, got 3 fields"),
    ("my.example.com:443:::1:8443", "put IPv6 addresses in brackets"),
    ("my.example.com:https:127.0.0.1:443", "'https' is not a port"),
    ("my.example.com:443:127.0.0.1:70000", "'70000' is not a port"),
    ("my.example.com:443:[::1:443", "unbalanced brackets"),
    ("my.example.com:443:[gw]:443", "[gw] is not an IPv6 address"),
])
def test_connect_to_syntax_errors_are_one_line(text, why):
    with pytest.raises(UsageError) as exc:
        parse_connect_to(text)
    assert why in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(("text", "host", "port", "addresses"), [
    ("my.example.com:443:127.0.0.1", "my.example.com", 443, ("127.0.0.1",)),
    ("+my.example.com:443:127.0.0.1,[::1]", "my.example.com", 443, ("127.0.0.1", "::1")),
    ("*:443:2001:db8::10", "*", 443, ("2001:db8::10",)),  # a bare IPv6 after the second colon is unambiguous
])
def test_parse_resolve(text, host, port, addresses):
    entry = parse_resolve(text)
    assert (entry.host, entry.port, entry.addresses) == (host, port, addresses)


@pytest.mark.parametrize(("text", "why"), [
    ("my.example.com:443", "expected HOST:PORT:ADDR"),
    ("my.example.com:443:gw.example.net", "'gw.example.net' is not an IP address"),
    (":443:127.0.0.1", "the host is empty"),
    ("-my.example.com:443", "removing entries"),
    ("my.example.com:0:127.0.0.1", "'0' is not a port"),
])
def test_resolve_syntax_errors(text, why):
    with pytest.raises(UsageError, match=why.replace("(", r"\(")):
        parse_resolve(text)


@pytest.mark.parametrize(("address", "public", "what"), [
    ("8.8.8.8", True, "public"),
    ("2606:4700::1111", True, "public"),
    ("10.0.0.1", False, "private, RFC 1918"),
    ("172.16.5.4", False, "private, RFC 1918"),
    ("127.0.0.1", False, "loopback"),
    ("::1", False, "loopback"),
    ("169.254.169.254", False, "link-local"),  # a cloud metadata service: never to be probed
    ("fe80::1", False, "link-local"),
    ("fd12:3456::1", False, "unique local, RFC 4193"),
    ("203.0.113.10", False, "documentation, RFC 5737"),
    ("2001:db8::10", False, "documentation, RFC 3849"),
    ("100.64.0.1", False, "shared carrier-grade NAT, RFC 6598"),
    ("::ffff:10.0.0.1", False, "private, RFC 1918"),  # IPv4-mapped: judged by its IPv4 part
    ("0.0.0.0", False, "unspecified"),
])
def test_address_judgement(address, public, what):
    assert is_public(address) is public
    assert describe_address(address) == what


def _dest(resolvers, name, connect_to=(), resolve=()):  # type: ignore[no-untyped-def]
    with Dns([Nameserver(resolvers.host, resolvers.port)], timeout=3) as dns:
        return destination(name, 443, [parse_connect_to(c) for c in connect_to],
                           [parse_resolve(r) for r in resolve], dns)


def test_dns_addresses_are_judged_and_withheld(resolvers):
    dest = _dest(resolvers, "lan.privnet.com")
    assert dest.override == ""
    assert [str(e) for e in dest.endpoints] == ["[fd00::10]:443", "192.168.1.10:443"]  # IPv6 first, like LE
    assert dest.dialable == () and len(dest.withheld) == 2


def test_addresses_the_user_types_are_never_judged(resolvers):
    dest = _dest(resolvers, "lan.privnet.com", connect_to=("lan.privnet.com:443:10.0.0.7:8443",))
    assert [str(e) for e in dest.dialable] == ["10.0.0.7:8443"] and dest.answers == ()
    dest = _dest(resolvers, "lan.privnet.com", resolve=("lan.privnet.com:443:127.0.0.1",))
    assert [str(e) for e in dest.dialable] == ["127.0.0.1:443"]


def test_connect_to_applies_before_resolve_as_in_curl(resolvers):
    dest = _dest(resolvers, "my.example.com", connect_to=("my.example.com:443:gw.test:8443",),
                 resolve=("gw.test:8443:127.0.0.1", "my.example.com:443:127.0.0.2"))
    assert (dest.host, dest.host_port) == ("gw.test", 8443)
    assert [str(e) for e in dest.dialable] == ["127.0.0.1:8443"]
    assert dest.override == "--connect-to my.example.com:443:gw.test:8443; --resolve gw.test:8443:127.0.0.1"


def test_connect_to_entries_that_do_not_match_are_ignored(resolvers):
    dest = _dest(resolvers, "my.example.com", connect_to=("other.example.com:443:127.0.0.1:1", "my.example.com:80::1"),
                 resolve=("my.example.com:8443:127.0.0.1",))
    assert dest.override == "" and dest.host == "my.example.com"
    assert [e.address for e in dest.endpoints] == ["2001:db8::10", "203.0.113.10"]  # from DNS, judged
    assert dest.dialable == ()


def test_first_matching_connect_to_wins_and_specific_resolve_beats_wildcard(resolvers):
    dest = _dest(resolvers, "my.example.com", connect_to=("::127.0.0.1:1000", "my.example.com:443:127.0.0.1:2000"))
    assert [str(e) for e in dest.dialable] == ["127.0.0.1:1000"]
    dest = _dest(resolvers, "my.example.com", resolve=("*:443:127.0.0.9", "my.example.com:443:127.0.0.1"))
    assert [e.address for e in dest.dialable] == ["127.0.0.1"]


def test_resolve_entry_str():
    assert str(parse_resolve("+a.example.com:443:127.0.0.1")) == "--resolve +a.example.com:443:127.0.0.1"
    assert isinstance(parse_resolve("a.example.com:443:127.0.0.1"), ResolveEntry)
