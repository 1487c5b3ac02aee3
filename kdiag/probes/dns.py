"""The one DNS lookup layer every rule shares: cached, concurrent, and outcomes as data.

Rules never catch resolver exceptions. `Dns.lookup(name, type)` always returns an `Answer` whose `rcode` is
either the resolver's own rcode (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …) or one of kdiag's outcomes for "the
resolver did not give an answer at all": TIMEOUT, NETWORK-ERROR, BAD-RESPONSE. That split is the one the rules
need: a SERVFAIL for the customer's name is the customer's problem (Let's Encrypt sees the same), a resolver
that never answers is kdiag's (status `error`).

Concurrent lookups of the same (name, type) share one query (single flight), so rules running in parallel
cost one round trip per distinct question. Queries go over UDP with EDNS (1232 octets, the DNS flag day
size) and are retried over TCP when truncated; messages are built and read by `kdiag.probes.wire` (dnspython
was most of a scan's CPU). `Dns.prefetch` asks a batch of questions at once over one socket, for `kdiag scan`.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kdiag.probes import wire
from kdiag.probes.cache import SingleFlightCache

if TYPE_CHECKING:
    import dns.rdata

# Outcomes where no usable DNS response arrived; everything else is a real rcode from the resolver.
TIMEOUT = "TIMEOUT"
# The resolver answered, but with TC=1 even over TCP: Boulder counts a truncated answer as a failed lookup.
TRUNCATED = "TRUNCATED"
NETWORK_ERROR = "NETWORK-ERROR"
BAD_RESPONSE = "BAD-RESPONSE"
NO_ANSWER_OUTCOMES = frozenset({TIMEOUT, NETWORK_ERROR, BAD_RESPONSE})

EDNS_PAYLOAD = 1232
_MIN_QUIET = 0.05  # Dns.prefetch gives up after this much silence at least
_FIRST_QUIET = 1.0  # ... and waits this long for a first answer, unless the previous prefetch heard none
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
    import dns.resolver  # only here: kdiag's own lookups do not go through dnspython

    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    return [Nameserver(str(ns), int(resolver.port)) for ns in resolver.nameservers]


@dataclass(frozen=True)
class Record:
    """One resource record from an answer.

    Attributes:
        name: the owner, lowercase, without the trailing dot.
        type: the type's mnemonic ("CAA", or "TYPE65280" for one kdiag has no name for).
        ttl: seconds, as the resolver gave it (the smallest in the RRset, as for an RRset).
        value: the presentation text of the data, as a zone file writes it ('0 issue "letsencrypt.org"').
        data: the data, typed: the address text (A, AAAA), the target name (CNAME, NS, PTR, DNAME), a
            `wire.Soa`, a `wire.Caa`, or the raw bytes of any other type.
    """

    name: str
    type: str
    ttl: int
    value: str
    data: object = field(default=None, compare=False, repr=False)

    @property
    def target(self) -> str:
        """For CNAME (NS, PTR, DNAME) records: the target, lowercase, without the trailing dot."""
        if not isinstance(self.data, str):
            raise TypeError(f"a {self.type} record has no target")
        return self.data

    @property
    def caa(self) -> wire.Caa:
        """For CAA records: flags, tag and value as served."""
        if not isinstance(self.data, wire.Caa):
            raise TypeError(f"a {self.type} record is not CAA")
        return self.data

    @property
    def rdata(self) -> dns.rdata.Rdata:
        """The record as a dnspython `Rdata`, for plugins written against dnspython (parsed on demand)."""
        import dns.rdata

        return dns.rdata.from_text("IN", self.type, self.value)


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
            minimum = self.soa.data.minimum if isinstance(self.soa.data, wire.Soa) else self.soa.ttl
            ttls.append(min(self.soa.ttl, minimum))
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
        self.max_workers = max_workers
        self._first_quiet = _FIRST_QUIET  # how long a prefetch waits for its first answer (see prefetch)
        self._rtt: float | None = None  # the median round trip of the last prefetch that heard answers
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
        """The answer for (name, type), from the cache or one query; raises ValueError for a name DNS cannot
        carry (a label over 63 octets, a name over 255) or a type kdiag has no code for."""
        answer = self._fetch((_plain_text(name), rdtype.upper()))
        seen = _RECORDING.get()
        if seen is not None:
            seen.append(answer)
        return answer

    def clear(self) -> None:
        """Forget every cached answer (a new round of `--wait` must see fresh data)."""
        self._cache.clear()

    def lookup_many(self, queries: Iterable[tuple[str, str]]) -> list[Answer]:
        """Look several questions up at once; returns answers in the order asked."""
        keys = [(_plain_text(name), rdtype.upper()) for name, rdtype in queries]
        # Answers already cached (in a prefetched scan: nearly all) cost no hand-off to the pool.
        missing = list(dict.fromkeys(k for k in keys if not self._cache.ready(k)))
        got: dict[tuple[str, str], Answer] = {}
        if missing:
            futures = {k: self._pool.submit(self._fetch, k) for k in missing[:-1]}
            # The last question is asked in this thread, which would otherwise only wait: one hand-off fewer.
            got[missing[-1]] = self._fetch(missing[-1])
            got.update((k, f.result()) for k, f in futures.items())
        answers = [got[k] if k in got else self._fetch(k) for k in keys]
        seen = _RECORDING.get()
        if seen is not None:
            seen.extend(answers)
        return answers

    def _fetch(self, key: tuple[str, str]) -> Answer:
        return self._cache.get(key, lambda: self._query(*key))

    def prefetch(self, questions: Iterable[tuple[str, str]]) -> int:
        """Ask many questions at once, ahead of the lookups that will want them; returns how many were asked.

        `kdiag scan` knows before diagnosing a batch of names what every rule will ask first (see `Rule.asks`):
        asking it all over one UDP socket, up to `max_workers` queries in flight, costs far less than one
        blocking exchange per question. Only responses from the first name server go into the cache, exactly as
        `lookup()` would have stored them; a question left unanswered, truncated, or answered with a datagram
        that does not parse is left for `lookup()`, which retries, falls back to TCP and to the next name server.
        So a prefetch can save round trips but never changes an answer.

        It never holds a batch up for long: once answers have been coming, it stops waiting when none has come
        for three times their median round trip (a name whose servers are dead must not stall the names beside
        it); before the first answer it waits at most a second, or, after a prefetch that heard nothing at all,
        three round trips as the server last answered. What is still unanswered then is `lookup()`'s.
        """
        keys = [k for k in dict.fromkeys((_plain_text(n), t.upper()) for n, t in questions) if not self._cache.ready(k)]
        todo: deque[_Question] = deque()
        for name, rdtype in keys:
            try:
                qtype = wire.type_code(rdtype)
                # id 0 for now: each query gets its own id when it is sent
                todo.append(_Question(name, rdtype, qtype, wire.encode_query(0, name or ".", qtype,
                                                                             payload=EDNS_PAYLOAD)))
            except ValueError:
                continue  # an unknown type or a name DNS cannot carry: lookup() raises it where the asker sees it
        if not todo:
            return 0
        ns = self.nameservers[0]
        try:
            burst = _Burst(ns, budget=self.timeout / len(self.nameservers), window=self.max_workers,
                           first_quiet=self._first_quiet)
        except OSError:
            return 0  # lookup() will say why
        answered = 0
        with burst:
            while burst.send(todo) and burst.wait():
                for question, message, rtt in burst.receive():
                    if message.truncated:
                        continue  # lookup() retries over TCP
                    answer = _answer(message, question.name, question.qtype, question.rdtype, str(ns), False,
                                     rtt * 1000)
                    self._cache.put_if_absent((question.name, question.rdtype), answer)
                    answered += 1
        # A resolver that answered nothing in a whole burst (dead, or a batch of names that all go unanswered)
        # gets a shorter wait next time, three round trips as it last answered: each batch of a scan would
        # otherwise lose a second to it before lookup() takes over. An answer heard restores the full wait.
        if burst.rtts:
            self._rtt = sorted(burst.rtts)[len(burst.rtts) // 2]
            self._first_quiet = _FIRST_QUIET
        else:
            self._first_quiet = max(3 * self._rtt, _MIN_QUIET) if self._rtt is not None else _MIN_QUIET
        with self._lock:
            self._stats.queries += answered
            self._stats.answered += answered
            self._stats.wait_ms += sum(burst.rtts) * 1000
        return len(keys)

    def _query(self, name: str, rdtype: str) -> Answer:
        try:
            qtype = wire.type_code(rdtype)
        except ValueError:
            raise ValueError(f"kdiag cannot ask for {rdtype!r} records: not a DNS type it knows") from None
        started = time.monotonic()
        deadline = started + self.timeout
        last = Answer(name, rdtype, TIMEOUT, error=f"no name server answered within {self.timeout:g} s")
        for i, ns in enumerate(self.nameservers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Share what is left between the servers not yet tried.
            budget = remaining / (len(self.nameservers) - i)
            last = self._ask(ns, name, qtype, rdtype, budget)
            if last.answered:
                break
        elapsed = (time.monotonic() - started) * 1000
        with self._lock:
            self._stats.queries += 1
            self._stats.answered += last.answered
            self._stats.wait_ms += elapsed
        return replace(last, elapsed_ms=round(elapsed, 1))

    def _ask(self, ns: Nameserver, name: str, qtype: int, rdtype: str, budget: float) -> Answer:
        qid = _new_id()
        try:
            query = wire.encode_query(qid, name or ".", qtype, payload=EDNS_PAYLOAD)
        except wire.WireError as exc:
            raise ValueError(f"cannot ask about {name!r}: {exc}") from None
        deadline = time.monotonic() + budget
        try:
            message = _exchange_udp(ns, query, name, qtype, deadline)
            truncated = message.truncated
            if truncated:
                message = _exchange_tcp(ns, query, deadline)
                if message.truncated:
                    return Answer(name, rdtype, TRUNCATED, truncated_udp=True, server=str(ns),
                                  error="the answer was truncated even over TCP")
        except TimeoutError:
            return Answer(name, rdtype, TIMEOUT, server=str(ns), error=f"{ns} did not answer within {budget:.1f} s")
        except wire.WireError as exc:
            return Answer(name, rdtype, BAD_RESPONSE, server=str(ns), error=f"{ns}: {exc}")
        except (OSError, EOFError) as exc:
            return Answer(name, rdtype, NETWORK_ERROR, server=str(ns), error=f"{ns}: {_oserror(exc)}")
        return _answer(message, name, qtype, rdtype, str(ns), truncated, 0.0)


@dataclass(frozen=True)
class _Question:
    name: str
    rdtype: str
    qtype: int
    query: bytes  # with id 0


class _Burst:
    """The queries of one `Dns.prefetch`, many in flight over one connected, non-blocking UDP socket.

    Each query gets an id no other query in flight has and gives up after `budget`; the burst as a whole
    gives up after a silence of three median round trips (`first_quiet` before the first answer).
    """

    def __init__(self, ns: Nameserver, *, budget: float, window: int, first_quiet: float) -> None:
        self.budget = budget
        self.window = window
        self.first_quiet = first_quiet
        self.rtts: list[float] = []
        self._sock = _udp_socket(ns)
        self._sock.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ)
        self._pending: dict[int, tuple[_Question, float]] = {}  # id -> (question, sent at)
        self._order: deque[tuple[float, int]] = deque()  # (give-up time, id), in sending order = give-up order
        self._next_id = _new_id()
        self._last_heard = time.monotonic()
        self._broken = False

    def __enter__(self) -> _Burst:
        return self

    def __exit__(self, *exc: object) -> None:
        self._selector.close()
        self._sock.close()

    def send(self, todo: deque[_Question]) -> bool:
        """Send from `todo` while the window has room; False once nothing is in flight (the burst is over)."""
        while todo and not self._broken and len(self._pending) < self.window:
            while self._next_id in self._pending:
                self._next_id = (self._next_id + 1) & 0xFFFF
            question = todo[0]
            try:
                self._sock.send(self._next_id.to_bytes(2, "big") + question.query[2:])
            except BlockingIOError:
                break  # the send buffer is full: receive first
            except OSError:
                self._broken = True  # an unreachable server: lookup() will say so
                break
            todo.popleft()
            sent = time.monotonic()
            self._pending[self._next_id] = (question, sent)
            self._order.append((sent + self.budget, self._next_id))
            self._next_id = (self._next_id + 1) & 0xFFFF
        now = time.monotonic()
        while self._order and (self._order[0][0] <= now or self._order[0][1] not in self._pending):
            self._pending.pop(self._order.popleft()[1], None)  # no answer in its time: left for lookup()
        return bool(self._pending) and not self._broken

    def wait(self) -> bool:
        """Wait for answers; False after the burst's silence limit."""
        quiet = max(3 * sorted(self.rtts)[len(self.rtts) // 2], _MIN_QUIET) if self.rtts else self.first_quiet
        while True:
            now = time.monotonic()
            if self._selector.select(max(min(self._order[0][0], self._last_heard + quiet) - now, 0.0) + 0.001):
                return True
            # Silence (not merely this thread waiting for the GIL: answers in the buffer wake select()).
            if time.monotonic() - self._last_heard >= quiet:
                return False
            if time.monotonic() >= self._order[0][0]:
                return True  # the oldest query's time is up: send() drops it and sends more

    def receive(self) -> Iterator[tuple[_Question, wire.Message, float]]:
        """The answers waiting in the socket: (question, response, round trip in seconds). A datagram that is
        not an answer to a query in flight is ignored, as lookup() ignores it."""
        while True:
            try:
                data = self._sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:  # ICMP unreachable: nothing listens there; lookup() will say so
                self._broken = True
                return
            qid = _message_id(data)
            entry = self._pending.get(qid) if len(data) >= 12 else None
            if entry is None:
                continue  # late, duplicated or somebody else's
            question, sent = entry
            try:
                message = wire.decode(data)
            except wire.WireError:
                del self._pending[qid]  # left for lookup(), which reports a bad response as such
                continue
            if not _is_answer_to(message, question.name, question.qtype):
                continue  # our id, another question: not ours after all
            del self._pending[qid]
            self._last_heard = time.monotonic()
            rtt = self._last_heard - sent
            self.rtts.append(rtt)
            yield question, message, rtt


def _new_id() -> int:
    # Unpredictable ids (with the kernel's random source port) are what stands between a stub and a spoofed
    # answer; the resolver may be a network away.
    return int.from_bytes(os.urandom(2), "big")


def _message_id(data: bytes) -> int:
    """The id of a DNS message (its first two octets), 0 for a datagram too short to have one."""
    return int.from_bytes(data[:2], "big")


def _udp_socket(ns: Nameserver) -> socket.socket:
    """A UDP socket connected to `ns`: the kernel drops datagrams from anyone else and reports ICMP errors."""
    family = socket.AF_INET6 if ":" in ns.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.connect((ns.host, ns.port))
    except OSError:
        sock.close()
        raise
    return sock


def _exchange_udp(ns: Nameserver, query: bytes, name: str, qtype: int, deadline: float) -> wire.Message:
    """Send `query` and wait for its response until `deadline`; datagrams that are not a response to it
    (another id, another question) are ignored, as a late answer to an earlier query may still arrive."""
    with _udp_socket(ns) as sock:
        sock.send(query)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            data = sock.recv(65535)
            if data[:2] != query[:2]:
                continue
            message = wire.decode(data)
            if _is_answer_to(message, name, qtype):
                return message


def _exchange_tcp(ns: Nameserver, query: bytes, deadline: float) -> wire.Message:
    """The same query over TCP (RFC 1035 §4.2.2: each message preceded by its two-octet length)."""
    left = max(deadline - time.monotonic(), 0.05)
    with socket.create_connection((ns.host, ns.port), timeout=left) as sock:
        sock.sendall(struct.pack("!H", len(query)) + query)
        size = struct.unpack("!H", _read_exactly(sock, 2, deadline))[0]
        message = wire.decode(_read_exactly(sock, size, deadline))
    if message.id != int.from_bytes(query[:2], "big") or not message.is_response:
        raise wire.WireError("the TCP response does not answer the query (another id, or not a response)")
    return message


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the server closed the connection mid-answer")
        chunks += chunk
    return bytes(chunks)


def _is_answer_to(message: wire.Message, name: str, qtype: int) -> bool:
    """Is `message` a response to our question? (As dnspython's Message.is_response: an error response may
    come without the question section.)"""
    if not message.is_response:
        return False
    if not message.question:
        return message.rcode in _ERRORS_WITHOUT_QUESTION
    return message.question[0][0] == (name or ".") and message.question[0][1] == qtype


_ERRORS_WITHOUT_QUESTION = frozenset({1, 2, 4, 5})  # FORMERR, SERVFAIL, NOTIMP, REFUSED
_CNAME = 5
_SOA = 6
_IN = 1


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


def _answer(message: wire.Message, name: str, qtype: int, rdtype: str, server: str, truncated: bool,
            elapsed_ms: float) -> Answer:
    """The Answer a response gives to (name, type): the CNAME chain it carries, the RRset at its end, the SOA
    of a negative answer and any extended errors."""
    cnames: list[Record] = []
    current = name or "."
    if qtype != _CNAME:
        seen = {current}
        for _ in range(_MAX_CHAIN):
            rrs = _rrset(message.answer, current, _CNAME)
            if not rrs:
                break
            cnames.append(rrs[0])
            current = rrs[0].target
            if current in seen:
                break  # a loop inside one response; the chain so far tells the story
            seen.add(current)
    soa = _rrset(message.authority, None, _SOA)
    return Answer(
        name=name,
        rdtype=rdtype,
        rcode=wire.rcode_text(message.rcode),
        records=_rrset(message.answer, current, qtype),
        cnames=tuple(cnames),
        soa=soa[0] if soa else None,
        ede=tuple(f"EDE {code}: {text or _ede_name(code)}" for code, text in message.ede),
        truncated_udp=truncated,
        server=server,
        elapsed_ms=round(elapsed_ms, 1),
    )


def _rrset(section: tuple[wire.Rr, ...], owner: str | None, rtype: int) -> tuple[Record, ...]:
    """The records of one RRset of class IN at `owner` (None: at the owner of the first such record), duplicates
    dropped and every TTL the smallest of the set, as dnspython's RRset has them."""
    picked: dict[str, wire.Rr] = {}
    for rr in section:
        if rr.type != rtype or rr.rclass != _IN:
            continue
        if owner is None:
            owner = rr.name
        if rr.name == owner:
            picked.setdefault(rr.text, rr)
    if not picked:
        return ()
    ttl = min(rr.ttl for rr in picked.values())
    kind = wire.type_text(rtype)
    return tuple(Record(rr.name, kind, ttl, rr.text, rr.data) for rr in picked.values())


def _ede_name(code: int) -> str:
    import dns.edns  # only for an extended error that came without its text

    return dns.edns.EDECode.to_text(code)


def _plain_text(name: str) -> str:
    return name.rstrip(".").lower()


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

