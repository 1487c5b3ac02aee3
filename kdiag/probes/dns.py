"""The one DNS lookup layer every rule shares: cached, concurrent, and outcomes as data.

Rules never catch resolver exceptions. `Dns.lookup(name, type)` always returns an `Answer` whose `rcode` is
either the resolver's own rcode (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …) or one of kdiag's outcomes for "the
resolver did not give an answer at all": TIMEOUT, NETWORK-ERROR, BAD-RESPONSE. That split is the one the rules
need: a SERVFAIL for the customer's name is the customer's problem (Let's Encrypt sees the same), a resolver
that never answers is kdiag's (status `error`).

Concurrent lookups of the same (name, type) share one query (single flight), so rules running in parallel
cost one round trip per distinct question. Queries go over UDP with EDNS (1232 octets, the DNS flag day
size) and are retried over TCP when truncated.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from kdiag.probes.cache import SingleFlightCache

# Outcomes where no usable DNS response arrived; everything else is a real rcode from the resolver.
TIMEOUT = "TIMEOUT"
# The resolver answered, but with TC=1 even over TCP: Boulder counts a truncated answer as a failed lookup.
TRUNCATED = "TRUNCATED"
NETWORK_ERROR = "NETWORK-ERROR"
BAD_RESPONSE = "BAD-RESPONSE"
NO_ANSWER_OUTCOMES = frozenset({TIMEOUT, NETWORK_ERROR, BAD_RESPONSE})

EDNS_PAYLOAD = 1232
_MAX_CHAIN = 16  # bound on CNAMEs read from one response; the rules bound the chain they accept themselves


@dataclass(frozen=True)
class Nameserver:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_V6_PORT = re.compile(r"^\[([0-9a-fA-F:.%]+)\](?::(\d+))?$")


def parse_nameserver(text: str) -> Nameserver:
    """`ADDR`, `ADDR:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address; raises ValueError."""
    text = text.strip()
    match = _V6_PORT.match(text)
    if match:
        host, port = match.group(1), match.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (ADDR[:PORT] or [V6]:PORT)") from None
    if port is None:
        return Nameserver(host)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} has an invalid port")
    return Nameserver(host, int(port))


def system_nameservers() -> list[Nameserver]:
    """The machine's resolvers from /etc/resolv.conf (only when the user gave no --nameserver)."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    return [Nameserver(str(ns), int(resolver.port)) for ns in resolver.nameservers]


@dataclass(frozen=True)
class Record:
    """One resource record from an answer: owner (lowercase, no trailing dot), type, TTL, presentation value."""

    name: str
    type: str
    ttl: int
    value: str
    rdata: dns.rdata.Rdata = field(compare=False, repr=False)

    @property
    def target(self) -> str:
        """For CNAME records: the target, lowercase, without the trailing dot."""
        return _plain(self.rdata.target)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Answer:
    """What the resolver said about (name, type).

    Attributes:
        rcode: the resolver's rcode text, or TIMEOUT / NETWORK-ERROR / BAD-RESPONSE when none came back.
        records: the RRset of the asked type, at the end of any CNAME chain in the answer.
        cnames: the CNAME records the resolver chased, in chain order (empty for a CNAME query itself).
        soa: the SOA from the authority section of a negative answer; its owner is the enclosing zone.
        ede: RFC 8914 extended errors, as "code: text".
    """

    name: str
    rdtype: str
    rcode: str
    records: tuple[Record, ...] = ()
    cnames: tuple[Record, ...] = ()
    soa: Record | None = None
    ede: tuple[str, ...] = ()
    truncated_udp: bool = False
    server: str = ""
    elapsed_ms: float = 0.0
    error: str = ""

    @property
    def answered(self) -> bool:
        """The resolver sent a DNS response (whatever its rcode)."""
        return self.rcode not in NO_ANSWER_OUTCOMES

    @property
    def ok(self) -> bool:
        """NOERROR or NXDOMAIN: the name's existence, or absence, is known."""
        return self.rcode in ("NOERROR", "NXDOMAIN")

    @property
    def canonical_name(self) -> str:
        return self.cnames[-1].target if self.cnames else self.name

    @property
    def ttl(self) -> int | None:
        """How long the resolver may go on giving this same answer, in seconds, or None when no TTL applies.

        The smallest TTL among the records and the CNAMEs of the chain; for a negative answer (NXDOMAIN, NODATA)
        the negative-caching TTL, the smaller of the SOA's TTL and its MINIMUM field (RFC 2308 §5). None for a
        SERVFAIL or REFUSED without records, and when no response came at all.
        """
        ttls = [r.ttl for r in (*self.records, *self.cnames)]
        if not self.records and self.soa is not None:
            ttls.append(min(self.soa.ttl, int(self.soa.rdata.minimum)))  # type: ignore[attr-defined]
        return min(ttls) if ttls else None

    def describe(self) -> str:
        """One phrase for messages: 'SERVFAIL', 'SERVFAIL (EDE 22: No Reachable Authority)', 'no answer in 2.0 s'."""
        if self.rcode == TIMEOUT:
            return f"no answer ({self.error})" if self.error else "no answer"
        if self.rcode in NO_ANSWER_OUTCOMES or self.rcode == TRUNCATED:
            return f"{self.rcode.lower()} ({self.error})" if self.error else self.rcode.lower()
        return f"{self.rcode} ({'; '.join(self.ede)})" if self.ede else self.rcode


@dataclass
class DnsStats:
    """Counters for progress reporting and benchmarks."""

    queries: int = 0
    answered: int = 0  # queries the resolver sent any DNS response to (whatever its rcode)
    cache_hits: int = 0
    wait_ms: float = 0.0


class Dns:
    """A caching, concurrent stub resolver over explicit recursive name servers.

    `timeout` bounds each lookup as a whole: with several name servers the time is shared between them, so a
    dead first server cannot make a lookup take longer than `timeout`.
    """

    def __init__(
        self,
        nameservers: Sequence[Nameserver],
        *,
        timeout: float = 5.0,
        max_workers: int = 16,
        cache_size: int = 4096,
    ) -> None:
        if not nameservers:
            raise ValueError("no name servers to ask")
        self.nameservers = tuple(nameservers)
        self.timeout = timeout
        self._stats = DnsStats()
        self._cache: SingleFlightCache[tuple[str, str], Answer] = SingleFlightCache(cache_size)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kdiag-dns")

    @property
    def stats(self) -> DnsStats:
        """Counters so far (cache hits as counted by the cache)."""
        self._stats.cache_hits = self._cache.hits
        return self._stats

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Dns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, name: str, rdtype: str) -> Answer:
        key = (_plain_text(name), rdtype.upper())
        answer = self._cache.get(key, lambda: self._query(*key))
        seen = _RECORDING.get()
        if seen is not None:
            seen.append(answer)
        return answer

    def clear(self) -> None:
        """Forget every cached answer (a new round of `--wait` must see fresh data)."""
        self._cache.clear()

    def lookup_many(self, queries: Iterable[tuple[str, str]]) -> list[Answer]:
        """Look several questions up at once; returns answers in the order asked."""
        asked = list(queries)
        if not asked:
            return []
        # The last question is asked in this thread, which would otherwise only wait: one hand-off fewer.
        if _RECORDING.get() is None:
            futures = [self._pool.submit(self.lookup, name, rdtype) for name, rdtype in asked[:-1]]
        else:  # carry the caller's recording() into the pool's threads (one context copy per task)
            futures = [self._pool.submit(contextvars.copy_context().run, self.lookup, name, rdtype)
                       for name, rdtype in asked[:-1]]
        last = self.lookup(*asked[-1])
        return [*(f.result() for f in futures), last]

    def _query(self, name: str, rdtype: str) -> Answer:
        qname = dns.name.from_text(name)
        qtype = dns.rdatatype.from_text(rdtype)
        started = time.monotonic()
        deadline = started + self.timeout
        last = Answer(name, rdtype, TIMEOUT, error=f"no name server answered within {self.timeout:g} s")
        for i, ns in enumerate(self.nameservers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Share what is left between the servers not yet tried.
            budget = remaining / (len(self.nameservers) - i)
            answer = self._ask(ns, qname, qtype, budget, name, rdtype)
            if answer.answered:
                last = answer
                break
            last = answer
        elapsed = (time.monotonic() - started) * 1000
        with self._lock:
            self._stats.queries += 1
            self._stats.answered += last.answered
            self._stats.wait_ms += elapsed
        return _replace_elapsed(last, elapsed)

    def _ask(self, ns: Nameserver, qname: dns.name.Name, qtype: dns.rdatatype.RdataType, budget: float,
             name: str, rdtype: str) -> Answer:
        query = dns.message.make_query(qname, qtype, use_edns=0, payload=EDNS_PAYLOAD)
        query.flags |= dns.flags.RD
        truncated = False
        try:
            started = time.monotonic()
            response = dns.query.udp(query, ns.host, timeout=budget, port=ns.port, ignore_unexpected=True)
            if response.flags & dns.flags.TC:
                truncated = True
                left = max(budget - (time.monotonic() - started), 0.05)
                response = dns.query.tcp(query, ns.host, timeout=left, port=ns.port)
                if response.flags & dns.flags.TC:
                    return Answer(name, rdtype, TRUNCATED, truncated_udp=True, server=str(ns),
                                  error="the answer was truncated even over TCP")
        except dns.exception.Timeout:
            return Answer(name, rdtype, TIMEOUT, server=str(ns),
                          error=f"{ns} did not answer within {budget:.1f} s")
        except (TimeoutError, OSError, EOFError) as exc:
            return Answer(name, rdtype, NETWORK_ERROR, server=str(ns), error=f"{ns}: {_oserror(exc)}")
        except dns.exception.DNSException as exc:
            return Answer(name, rdtype, BAD_RESPONSE, server=str(ns), error=f"{ns}: {exc}")
        return _parse(response, qname, qtype, name, rdtype, str(ns), truncated)


_RECORDING: contextvars.ContextVar[list[Answer] | None] = contextvars.ContextVar("kdiag_dns_recording",
                                                                                 default=None)


@contextmanager
def recording() -> Iterator[list[Answer]]:
    """Collect every `Answer` that `Dns.lookup`/`lookup_many` return inside the block, cached or not.

    `kdiag domain --wait` wraps each rule in one, to learn which answers (and so which TTLs) decided a failing
    check. Per context (thread or task), so rules running side by side each see only their own lookups.
    """
    seen: list[Answer] = []
    token = _RECORDING.set(seen)
    try:
        yield seen
    finally:
        _RECORDING.reset(token)


def _parse(response: dns.message.Message, qname: dns.name.Name, qtype: dns.rdatatype.RdataType,
           name: str, rdtype: str, server: str, truncated: bool) -> Answer:
    rcode = dns.rcode.to_text(response.rcode())
    cnames: list[Record] = []
    current = qname
    if qtype != dns.rdatatype.CNAME:
        seen = {current}
        for _ in range(_MAX_CHAIN):
            rrset = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
            if rrset is None:
                break
            cname = _records(rrset)[0]
            cnames.append(cname)
            current = cname.rdata.target  # type: ignore[attr-defined]
            if current in seen:
                break  # a loop inside one response; the chain so far tells the story
            seen.add(current)
    final = response.get_rrset(response.answer, current, dns.rdataclass.IN, qtype)
    soa = next((rr for rr in response.authority if rr.rdtype == dns.rdatatype.SOA), None)
    ede = tuple(f"EDE {int(e.code)}: {e.text or dns.edns.EDECode.to_text(e.code)}"
                for e in response.extended_errors())
    return Answer(
        name=name,
        rdtype=rdtype,
        rcode=rcode,
        records=_records(final) if final is not None else (),
        cnames=tuple(cnames),
        soa=_records(soa)[0] if soa is not None else None,
        ede=ede,
        truncated_udp=truncated,
        server=server,
    )


def _records(rrset: dns.rrset.RRset) -> tuple[Record, ...]:
    owner = _plain(rrset.name)
    kind = dns.rdatatype.to_text(rrset.rdtype)
    return tuple(Record(owner, kind, rrset.ttl, rd.to_text(), rd) for rd in rrset)


def _replace_elapsed(answer: Answer, elapsed: float) -> Answer:
    return replace(answer, elapsed_ms=round(elapsed, 1))


def _plain(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else "."


def _plain_text(name: str) -> str:
    return name.rstrip(".").lower()


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

