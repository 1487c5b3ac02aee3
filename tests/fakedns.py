"""An in-process stand-in for a recursive resolver, answering from fixtures/zones/*.zone, with fault injection.

For tests that cannot use the real bed (tests/dnsbed.py: needs root and NSD/Unbound). It reads the same zone
files, adds the root and TLD zones the bed generates, and shapes its answers the way Unbound does for them:
CNAME chains across zones, NXDOMAIN vs NODATA with the enclosing zone's SOA, RFC 4592 wildcards, SERVFAIL for
CNAME loops and for zones served only by dead.bed.test./lame.bed.test., RA set, EDNS echoed, TC=1 when a UDP
answer does not fit. It does not recurse, cache, take time or validate DNSSEC.

    with FakeDns(ZONES, overrides={("my.example.com.", "CAA"): "SERVFAIL"}) as fake:
        host, port = fake.address

Override actions, per (name, type) where type may be "*": any rcode name ("SERVFAIL", "REFUSED", "NXDOMAIN",
...) answers empty with that rcode; "DROP" never answers (client timeouts); "TRUNCATE" answers TC=1 over UDP
and normally over TCP; "TRUNCATE-ALWAYS" answers TC=1 over both.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from tests.dnsbed import BROKEN_NS, build_zones, read_zones

# CNAME hops followed before giving up with SERVFAIL; a loop ends here too, as it does in a real resolver.
MAX_CHAIN = 12
# The EDNS payload we advertise and the largest UDP answer we send, like Unbound's default.
OUR_PAYLOAD = 1232
FAULTS = {"DROP", "TRUNCATE", "TRUNCATE-ALWAYS"}

# rcode, answer section, authority section
Answer = tuple[dns.rcode.Rcode, list[dns.rrset.RRset], list[dns.rrset.RRset]]
Reply = Callable[[bytes, bool], "bytes | None"]  # (query wire, over TCP?) -> reply wire, or None for silence


def load_zones(zones_dir: Path) -> dict[dns.name.Name, dns.zone.Zone]:
    """The fixture zones in zones_dir plus the root, TLD and bed.test. zones the real bed would generate.

    With the generated zones, `com. CAA` is NODATA and `www.example.org.` NXDOMAIN with the root's SOA, as
    through the real bed.
    """
    leaves = read_zones(Path(zones_dir))
    generated, _ = build_zones(leaves)
    return {origin: dns.zone.from_text(text, origin=origin, relativize=False)
            for origin, text in {**generated, **leaves}.items()}


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset, ttl: int | None = None) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rdataset.ttl if ttl is None else ttl, list(rdataset))


class FakeDns:
    """A threaded UDP+TCP DNS server on one ephemeral port of `host`, acting as a recursive resolver."""

    def __init__(self, zones_dir: Path, overrides: dict[tuple[str, str], str] | None = None, *,
                 delay: float = 0.0, host: str = "127.0.0.1") -> None:
        self.zones = load_zones(zones_dir)
        self.delay = delay
        self.host = host
        self._overrides: dict[tuple[dns.name.Name, str], str] = {}
        for (name, rdtype), action in (overrides or {}).items():
            action = action.upper()
            if action not in FAULTS and action not in dns.rcode.Rcode.__members__:
                # A typo must not silently turn into a normal answer.
                raise ValueError(f"override {name} {rdtype}: unknown action {action!r}")
            self._overrides[dns.name.from_text(name), rdtype.upper()] = action
        self._servers: list[socketserver.BaseServer] = []
        self._port = 0

    @property
    def address(self) -> tuple[str, int]:
        if not self._servers:
            raise RuntimeError("FakeDns is not started")
        return self.host, self._port

    def start(self) -> FakeDns:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # UDP and TCP share one port number: bind UDP to an ephemeral port, then TCP to the same one (retrying
        # in the rare case that TCP port is taken).
        for _ in range(20):
            udp = _UDPServer((self.host, 0), family, self.reply)
            try:
                tcp = _TCPServer((self.host, udp.server_address[1]), family, self.reply)
            except OSError:
                udp.server_close()
                continue
            self._servers, self._port = [udp, tcp], udp.server_address[1]
            break
        else:
            raise OSError(f"no free UDP+TCP port pair on {self.host}")
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> FakeDns:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- answering ---------------------------------------------------------------------------------------------

    def reply(self, wire: bytes, tcp: bool) -> bytes | None:
        """The wire reply to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: say nothing, as real servers mostly do
        if self.delay:
            time.sleep(self.delay)
        response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        response.flags |= dns.flags.RA
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        action = self._overrides.get((question.name, dns.rdatatype.to_text(question.rdtype))) or \
            self._overrides.get((question.name, "*"))
        if action == "DROP":
            return None
        if action == "TRUNCATE-ALWAYS" or (action == "TRUNCATE" and not tcp):
            response.flags |= dns.flags.TC
            return response.to_wire()
        if action and action not in FAULTS:
            response.set_rcode(dns.rcode.from_text(action))
            return response.to_wire()
        rcode, response.answer, response.authority = self.resolve(question.name, question.rdtype)
        response.set_rcode(rcode)
        # RFC 6891 §7: a UDP answer fits the client's advertised payload (512 bytes without EDNS), capped by ours.
        limit = 65535 if tcp else min(max(query.payload, 512), OUR_PAYLOAD) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # Like Unbound: TC=1 and empty sections, so the client retries over TCP.
            response.answer, response.authority = [], []
            response.flags |= dns.flags.TC
            return response.to_wire()

    def resolve(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Answer:
        """What a recursive resolver would answer for qname/rdtype, given the loaded zones."""
        chain: list[dns.rrset.RRset] = []
        name = qname
        for _ in range(MAX_CHAIN):
            zone = self._zone_for(name)
            assert zone.origin is not None
            if all(rd.target in BROKEN_NS for rd in zone.find_rdataset(zone.origin, "NS")):
                return dns.rcode.SERVFAIL, [], []
            node, exists = self._node(zone, name)
            if node is None:
                return (dns.rcode.NOERROR if exists else dns.rcode.NXDOMAIN), chain, [self._soa(zone)]
            if rdtype == dns.rdatatype.ANY and node.rdatasets:
                return dns.rcode.NOERROR, chain + [_rrset(name, rds) for rds in node.rdatasets], []
            rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if rdataset is not None:
                return dns.rcode.NOERROR, chain + [_rrset(name, rdataset)], []
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                return dns.rcode.NOERROR, chain, [self._soa(zone)]  # NODATA
            chain.append(_rrset(name, cname))
            name = cname[0].target
        return dns.rcode.SERVFAIL, [], []

    def _zone_for(self, name: dns.name.Name) -> dns.zone.Zone:
        """The closest enclosing zone (at worst the root zone, which encloses every name)."""
        return self.zones[max((origin for origin in self.zones if name.is_subdomain(origin)), key=len)]

    @staticmethod
    def _node(zone: dns.zone.Zone, name: dns.name.Name) -> tuple[dns.node.Node | None, bool]:
        """The node holding name's data (a wildcard's, if synthesised) and whether name exists at all."""
        node = zone.get_node(name)
        if node is not None:
            return node, True

        def exists(n: dns.name.Name) -> bool:  # owns data, or is an empty non-terminal above some that does
            return any(owner.is_subdomain(n) for owner in zone.nodes)

        if exists(name):
            return None, True
        # RFC 4592 §3.3.1: only the wildcard child of the closest encloser can synthesise the answer.
        encloser = name.parent()
        while not exists(encloser):
            encloser = encloser.parent()
        wildcard = zone.get_node(dns.name.from_text("*", encloser))
        return wildcard, wildcard is not None

    @staticmethod
    def _soa(zone: dns.zone.Zone) -> dns.rrset.RRset:
        # RFC 2308 §3: the negative-answer TTL is the smaller of the SOA's own TTL and its MINIMUM field.
        assert zone.origin is not None
        soa = zone.find_rdataset(zone.origin, "SOA")
        return _rrset(zone.origin, soa, min(soa.ttl, soa[0].minimum))


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        wire, sock = self.request
        reply = self.server.reply(wire, False)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        # RFC 1035 §4.2.2: each message is preceded by its 2-byte length; a client may send several.
        try:
            while (header := self._read(2)) is not None and (wire := self._read(struct.unpack("!H", header)[0])):
                reply = self.server.reply(wire, True)
                if reply is not None:  # DROP: keep the connection open and silent, so the client times out
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass  # the client hung up (a timed-out client may reset): nothing to report

    def _read(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True  # a DROPped or delayed query must not hold up stop()

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, reply: Reply) -> None:
        self.address_family = family
        self.reply = reply
        super().__init__(address, _UDPHandler)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, reply: Reply) -> None:
        self.address_family = family
        self.reply = reply
        super().__init__(address, _TCPHandler)

