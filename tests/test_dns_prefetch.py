"""`Dns.prefetch` and `Rule.asks`: asking a batch's questions at once saves round trips but never changes an answer,
and a name that never answers does not hold the batch up.

Everything runs against the in-process fake resolver on loopback (tests/fakedns.py), with faults injected per name.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.context import Context, Options
from kdiag.probes.dns import NETWORK_ERROR, TIMEOUT, Dns, Nameserver, recording
from kdiag.rules import BUILTIN
from tests.fakedns import FakeDns

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
DEAD = "dead.cname-cases.com"  # never answered
TC = "tc.cname-cases.com"  # truncated over UDP, answered over TCP
BROKEN = "servfail.cname-cases.com"
NAMES = [f"n{i}.wildok.cname-cases.com" for i in range(40)] + ["ok.cname-cases.com", "my.caa-forbid.com"]


@pytest.fixture(scope="module")
def faulty() -> Iterator[FakeDns]:
    with FakeDns(ZONES, overrides={(f"{DEAD}.", "*"): "DROP", (f"{TC}.", "*"): "TRUNCATE",
                                   (f"{BROKEN}.", "*"): "SERVFAIL"}) as fake:
        yield fake


def _dns(fake: FakeDns, timeout: float = 5.0) -> Dns:
    host, port = fake.address
    return Dns([Nameserver(host, port)], timeout=timeout, max_workers=16)


def _questions(names: list[str]) -> list[tuple[str, str]]:
    return [(n, t) for n in names for t in ("A", "AAAA", "CAA")]


def test_prefetched_answers_are_the_answers_lookup_gets(faulty):
    questions = _questions([*NAMES, BROKEN])
    with _dns(faulty) as plain, _dns(faulty) as fetched:
        assert fetched.prefetch(questions) == len(questions)
        queries = fetched.stats.queries
        assert queries == len(questions)  # every one answered in the burst
        for name, rdtype in questions:
            want, got = plain.lookup(name, rdtype), fetched.lookup(name, rdtype)
            assert (got.rcode, got.records, got.cnames, got.soa, got.ede) == \
                (want.rcode, want.records, want.cnames, want.soa, want.ede), (name, rdtype)
        assert fetched.stats.queries == queries  # the lookups were all cache hits
        assert fetched.lookup(BROKEN, "A").rcode == "SERVFAIL"
        assert fetched.lookup("ok.cname-cases.com", "A").cnames[0].target == "9e454bcfec.kongcloud.dev"


def test_a_silent_name_does_not_hold_the_batch_and_is_left_to_lookup(faulty):
    with _dns(faulty, timeout=8.0) as dns:
        started = time.monotonic()
        dns.prefetch(_questions([DEAD, *NAMES]))
        took = time.monotonic() - started
        assert took < 4.0, f"prefetch waited {took:.1f} s for a name that never answers"
        assert dns.stats.queries == 3 * len(NAMES)
        # The silent name was not cached as anything: lookup() asks it itself and reports its own timeout.
        dns.timeout = 0.5
        answer = dns.lookup(DEAD, "A")
        assert answer.rcode == TIMEOUT and "did not answer within 0.5 s" in answer.error


def test_a_truncated_answer_is_left_to_lookup_which_asks_over_tcp(faulty):
    with _dns(faulty) as dns:
        dns.prefetch(_questions([TC, "ok.cname-cases.com"]))
        assert dns.stats.queries == 3  # ok.cname-cases.com's three; the truncated ones are not cached
        answer = dns.lookup(TC, "A")
        assert answer.truncated_udp and answer.rcode in ("NOERROR", "NXDOMAIN")


def test_nothing_listening_costs_no_wait_and_lookup_names_the_problem():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # (the port is closed again: the kernel answers queries to it with ICMP port unreachable)
    with Dns([Nameserver("127.0.0.1", port)], timeout=8.0) as dns:
        started = time.monotonic()
        dns.prefetch(_questions(NAMES))
        assert time.monotonic() - started < 4.0
        assert dns.stats.queries == 0
        answer = dns.lookup(NAMES[0], "A")
        assert answer.rcode == NETWORK_ERROR and "connection refused" in answer.error


def test_already_cached_questions_are_not_asked_again(faulty):
    with _dns(faulty) as dns:
        dns.lookup("ok.cname-cases.com", "A")
        assert dns.prefetch([("ok.cname-cases.com", "A"), ("OK.cname-cases.com.", "a")]) == 0


@pytest.mark.parametrize("rule", [r for r in BUILTIN if r.asks is not None], ids=lambda r: r.id)
@pytest.mark.parametrize("domain", ["ok.cname-cases.com", "my.caa-forbid.com", "cname-cases.com"])
def test_a_rule_asks_first_what_it_declares(rule, domain, faulty):
    # A declared question the rule would not ask is a wasted query in every scan; so each must be asked.
    assert rule.asks is not None
    with _dns(faulty) as dns, recording() as seen:
        ctx = Context(domain=domain, dns=dns, options=Options(target="9e454bcfec.kongcloud.dev"))
        rule.check(ctx)
    asked = {(a.name, a.rdtype) for a in seen}
    declared = set(rule.asks(domain))
    assert declared and declared <= asked, declared - asked


def test_prefetch_over_ipv6_loopback(fake_dns_v6):
    host, port = fake_dns_v6.address
    with Dns([Nameserver(host, port)], timeout=5.0) as dns:
        assert dns.prefetch(_questions(NAMES[:5])) == 15
        assert dns.stats.queries == 15
        assert dns.lookup(NAMES[0], "A").cnames[0].target == "9e454bcfec.kongcloud.dev"
        assert dns.stats.queries == 15


def test_after_a_burst_that_heard_nothing_the_next_waits_only_briefly(faulty):
    # A resolver that drops everything: the first batch of a scan waits for a first answer (a cold resolver can
    # take a while), the following batches do not, and lookup() still reports each name's own timeout.
    with _dns(faulty, timeout=8.0) as dns:
        started = time.monotonic()
        dns.prefetch(_questions([DEAD]))
        first = time.monotonic() - started
        started = time.monotonic()
        dns.prefetch([(DEAD, "TXT"), (DEAD, "MX")])
        second = time.monotonic() - started
        assert second < first / 2, (first, second)
        assert dns.stats.queries == 0
        # An answer heard again restores the longer first wait, so a slow but live resolver gets its second.
        dns.prefetch(_questions(NAMES[:2]))
        assert dns.stats.queries == 6
