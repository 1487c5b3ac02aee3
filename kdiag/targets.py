"""Where kdiag connects for a name: curl's --connect-to and --resolve overrides, else the name's DNS addresses.

The safety rule lives here and nowhere else: an address that DNS publishes is dialled only when it is globally
routable (`ipaddress.ip_address(a).is_global`). A domain that publishes 10.0.0.1 or 127.0.0.1 must never make
kdiag probe the machine's own network; such addresses are reported (`Destination.withheld`), never dialled.
An address the user typed in --connect-to or --resolve is the user's choice and is never judged.

The flags have curl's syntax and meaning (curl `docs/cmdline-opts/connect-to.md`, `resolve.md`,
`CURLOPT_CONNECT_TO(3)`):

* `--connect-to HOST1:PORT1:HOST2:PORT2`: a request for HOST1:PORT1 connects to HOST2:PORT2 instead. An empty
  HOST1 or PORT1 matches any host or port; an empty HOST2 or PORT2 keeps the request's own. The first matching
  entry wins. SNI, Host and certificate verification still use the request's name.
* `--resolve [+]HOST:PORT:ADDR[,ADDR]...`: HOST:PORT resolves to these addresses (HOST `*` matches any host;
  a specific entry beats the wildcard). It applies to the host actually connected to, i.e. after --connect-to,
  as in curl. The `+` (time-limited entry) is accepted and means nothing for a one-shot run.

IPv6 addresses go in brackets (`[2001:db8::1]`); in --resolve's address list a bare IPv6 address is also
accepted, since nothing after the second colon is ambiguous.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdiag.errors import UsageError

if TYPE_CHECKING:
    from kdiag.probes.dns import Answer, Dns


@dataclass(frozen=True)
class ConnectTo:
    """One --connect-to entry; None fields are curl's empty fields (match anything / keep the original)."""

    host: str | None
    port: int | None
    to_host: str | None
    to_port: int | None
    raw: str

    def matches(self, host: str, port: int) -> bool:
        return (self.host is None or self.host == host) and (self.port is None or self.port == port)

    def __str__(self) -> str:
        return f"--connect-to {self.raw}"


@dataclass(frozen=True)
class ResolveEntry:
    """One --resolve entry: HOST (or `*`) at PORT is these addresses."""

    host: str
    port: int
    addresses: tuple[str, ...]
    raw: str

    def matches(self, host: str, port: int) -> bool:
        return self.port == port and (self.host == "*" or self.host == host)

    def __str__(self) -> str:
        return f"--resolve {self.raw}"


def _split_fields(text: str, flag: str, count: int | None) -> list[str]:
    """Split at colons outside [brackets]; with count, the last field takes the rest verbatim."""
    fields: list[str] = []
    current = ""
    depth = 0
    for i, ch in enumerate(text):
        if count is not None and len(fields) == count - 1:
            current = text[i:]
            break
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == ":" and depth == 0:
            fields.append(current)
            current = ""
        else:
            current += ch
    fields.append(current)
    return fields


def _host(field: str, flag: str, raw: str) -> str:
    """A host field: a name (lowercased, no trailing dot) or an IP address (brackets removed for IPv6)."""
    if field.startswith("[") and field.endswith("]"):
        inner = field[1:-1]
        try:
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise UsageError(f"{flag} {raw!r}: [{inner}] is not an IPv6 address") from None
    if "[" in field or "]" in field:
        raise UsageError(f"{flag} {raw!r}: unbalanced brackets in {field!r}")
    try:
        return str(ipaddress.ip_address(field))
    except ValueError:
        pass
    host = field.rstrip(".").lower()
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise UsageError(f"{flag} {raw!r}: {field!r} is not a host name or address")
    return host


def _port(field: str, flag: str, raw: str) -> int:
    if not field.isdigit() or not 0 < int(field) < 65536:
        raise UsageError(f"{flag} {raw!r}: {field!r} is not a port (1-65535)")
    return int(field)


def parse_connect_to(raw: str) -> ConnectTo:
    """Parse `HOST1:PORT1:HOST2:PORT2` (empty fields allowed); raises UsageError with a one-line reason."""
    flag = "--connect-to"
    text = raw.strip()
    if text.count("[") != text.count("]"):
        raise UsageError(f"{flag} {raw!r}: unbalanced brackets")
    fields = _split_fields(text, flag, None)
    if len(fields) != 4:
        hint = " (put IPv6 addresses in brackets: [2001:db8::1])" if len(fields) > 4 else ""
        raise UsageError(f"{flag} {raw!r}: expected HOST1:PORT1:HOST2:PORT2, got {len(fields)} fields{hint}")
    h1, p1, h2, p2 = fields
    return ConnectTo(
        host=_host(h1, flag, raw) if h1 else None,
        port=_port(p1, flag, raw) if p1 else None,
        to_host=_host(h2, flag, raw) if h2 else None,
        to_port=_port(p2, flag, raw) if p2 else None,
        raw=text,
    )


def parse_resolve(raw: str) -> ResolveEntry:
    """Parse `[+]HOST:PORT:ADDR[,ADDR]...`; raises UsageError with a one-line reason."""
    flag = "--resolve"
    text = raw.strip()
    body = text[1:] if text.startswith("+") else text
    if body.startswith("-"):
        raise UsageError(f"{flag} {raw!r}: removing entries (-HOST:PORT) means nothing to kdiag; drop the flag")
    fields = _split_fields(body, flag, 3)
    if len(fields) != 3 or not fields[2]:
        raise UsageError(f"{flag} {raw!r}: expected HOST:PORT:ADDR[,ADDR]...")
    h, p, addrs = fields
    host = "*" if h == "*" else _host(h, flag, raw) if h else ""
    if not host:
        raise UsageError(f"{flag} {raw!r}: the host is empty (use * for any host)")
    addresses = []
    for item in addrs.split(","):
        item = item.strip()
        inner = item[1:-1] if item.startswith("[") and item.endswith("]") else item
        try:
            addresses.append(str(ipaddress.ip_address(inner)))
        except ValueError:
            raise UsageError(f"{flag} {raw!r}: {item!r} is not an IP address") from None
    return ResolveEntry(host=host, port=_port(p, flag, raw), addresses=tuple(addresses), raw=text)


# -- addresses ---------------------------------------------------------------------------------------------


def is_public(address: str) -> bool:
    """Globally routable? An IPv4-mapped IPv6 address is judged by its IPv4 part (Python 3.11 does not)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def describe_address(address: str) -> str:
    """Why an address is not public, in a few words: 'private, RFC 1918', 'documentation, RFC 5737'."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    v4 = isinstance(ip, ipaddress.IPv4Address)
    checks: list[tuple[bool, str]] = [
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (v4 and ip in ipaddress.ip_network("100.64.0.0/10"), "shared carrier-grade NAT, RFC 6598"),
        (v4 and any(ip in ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
         "documentation, RFC 5737"),
        (not v4 and ip in ipaddress.ip_network("2001:db8::/32"), "documentation, RFC 3849"),
        (v4 and ip in ipaddress.ip_network("198.18.0.0/15"), "benchmarking, RFC 2544"),
        (v4 and any(ip in ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
         "private, RFC 1918"),
        (not v4 and ip in ipaddress.ip_network("fc00::/7"), "unique local, RFC 4193"),
    ]
    for hit, what in checks:
        if hit:
            return what
    return "reserved" if not is_public(address) else "public"


@dataclass(frozen=True)
class Endpoint:
    """One address:port to connect to, and where it came from.

    Attributes:
        via: "dns" when the address is published for the name (then it is judged), else the flag that set it.
    """

    address: str
    port: int
    via: str = "dns"

    @property
    def chosen(self) -> bool:
        """The user typed this address: never judged public or private."""
        return self.via != "dns"

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.address else "ipv4"

    @property
    def public(self) -> bool:
        return is_public(self.address)

    @property
    def dialable(self) -> bool:
        return self.chosen or self.public

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Destination:
    """Where a request for name:port goes.

    Attributes:
        host: the host actually connected to: the name, or --connect-to's HOST2.
        override: the flags that decided it ("" when DNS alone did).
        endpoints: every candidate address, in order (IPv6 first, as Let's Encrypt tries it first).
        answers: the DNS answers consulted (none when the flags gave addresses).
        silent: a lookup that got no answer at all: kdiag cannot tell where the name goes.
    """

    name: str
    port: int
    host: str
    host_port: int
    override: str = ""
    endpoints: tuple[Endpoint, ...] = ()
    answers: tuple[Answer, ...] = ()
    silent: Answer | None = None

    @property
    def dialable(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.dialable)

    @property
    def withheld(self) -> tuple[Endpoint, ...]:
        """Addresses DNS published that are not globally routable: reported, never dialled."""
        return tuple(e for e in self.endpoints if not e.dialable)


def destination(name: str, port: int, connect_to: Sequence[ConnectTo], resolve: Sequence[ResolveEntry],
                dns: Dns) -> Destination:
    """Apply --connect-to, then --resolve, then DNS (A and AAAA through kdiag's resolver)."""
    host, host_port, used = name, port, []
    rewrite = next((c for c in connect_to if c.matches(name, port)), None)
    if rewrite is not None:
        host = rewrite.to_host or name
        host_port = rewrite.to_port or port
        used.append(str(rewrite))
    entry = next((r for r in resolve if r.matches(host, host_port) and r.host != "*"), None) or \
        next((r for r in resolve if r.matches(host, host_port)), None)
    if entry is not None:
        used.append(str(entry))
        return Destination(name, port, host, host_port, "; ".join(used),
                           tuple(Endpoint(a, host_port, str(entry)) for a in entry.addresses))
    try:
        literal = str(ipaddress.ip_address(host))
    except ValueError:
        literal = None
    if literal is not None:
        # Only --connect-to can make the host an address: the user typed it.
        return Destination(name, port, host, host_port, "; ".join(used), (Endpoint(literal, host_port, used[0]),))
    aaaa, a = dns.lookup_many([(host, "AAAA"), (host, "A")])
    silent = next((x for x in (a, aaaa) if not x.answered), None)
    endpoints = tuple(Endpoint(r.value, host_port) for x in (aaaa, a) if x.rcode == "NOERROR" for r in x.records)
    return Destination(name, port, host, host_port, "; ".join(used), endpoints, (aaaa, a), silent)
