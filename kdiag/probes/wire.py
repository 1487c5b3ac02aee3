"""DNS messages on the wire: just the part kdiag writes and reads.

kdiag asks one question per UDP/TCP exchange (with an EDNS0 OPT record) and reads back the header, the
question, the answer and authority records, the extended rcode and any Extended DNS Errors.  This module
builds such a query and parses such a response, following:

* RFC 1035 §4 (message layout, names, compression pointers), with RFC 2181 §8 for TTLs;
* RFC 3597 (unknown types: opaque rdata, ``\\# N hex`` presentation, no decompression of their names);
* RFC 6891 (EDNS0: the OPT pseudo-record, the extended rcode bits);
* RFC 8914 (Extended DNS Errors, EDNS option 15);
* RFC 8659 (CAA records).

Why not dnspython on the hot path: a scan sends thousands of queries and its CPU time went into dnspython
building and parsing messages (``Name`` objects, rrsets, rdata classes, enum conversions): on the
development machine about 200 us to parse a 127-octet CNAME-chain response and 60 us to build a query,
against about 15 us and 1.5 us here.  dnspython stays the reference: the tests compare every field with
it, and the presentation text of the record types this module does not parse is still dnspython's
(imported lazily, only when such a record shows up).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Caa",
    "Message",
    "Rr",
    "Soa",
    "WireError",
    "decode",
    "encode_query",
    "rcode_text",
    "type_code",
    "type_text",
]


class WireError(ValueError):
    """A DNS message (or a name to put in one) that cannot be parsed or built; the text says what and where."""


# --- type and rcode mnemonics ---------------------------------------------------------------------------------

# dnspython 2.9's table (dns.rdatatype.RdataType, with its "_" shown as "-"), so that kdiag's type names stay
# what they were when dnspython printed them.
_TYPES: Final[dict[int, str]] = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25",
    20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA",
    29: "LOC", 30: "NXT", 33: "SRV", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 41: "OPT",
    42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID",
    50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 66: "DSYNC", 67: "HHIT", 68: "BRID",
    99: "SPF", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP", 108: "EUI48", 109: "EUI64",
    128: "NXNAME", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "ANY",
    256: "URI", 257: "CAA", 258: "AVC", 260: "AMTRELAY", 261: "RESINFO", 262: "WALLET", 32768: "TA",
    32769: "DLV",
}
# dnspython also accepts the enum spelling with "_" (NSAP_PTR).
_CODES: Final[dict[str, int]] = {text: code for code, text in _TYPES.items()} | {"NSAP_PTR": 23}

# dnspython 2.9's dns.rcode.Rcode: to_text() is the first name of a value (16 is BADVERS, not BADSIG).
_RCODES: Final[dict[int, str]] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
    7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI", 16: "BADVERS", 17: "BADKEY",
    18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE",
}


def type_code(text: str) -> int:
    """The numeric RR type for a mnemonic ("A", "caa") or the RFC 3597 form ("TYPE65280").

    Raises ValueError for an unknown mnemonic or a TYPEnnn above 65535, like dns.rdatatype.from_text.
    """
    upper = text.upper()
    code = _CODES.get(upper)
    if code is not None:
        return code
    digits = upper[4:]
    # isascii() too: str.isdigit() also accepts other scripts' digits, which int() would then read.
    if upper.startswith("TYPE") and digits.isascii() and digits.isdigit():
        value = int(digits)
        if value <= 0xFFFF:
            return value
    raise ValueError(f"unknown DNS record type {text!r}")


def type_text(code: int) -> str:
    """The mnemonic of an RR type, or dnspython's (and RFC 3597's) "TYPEnnn" for one without a name."""
    return _TYPES.get(code) or f"TYPE{code}"


def rcode_text(code: int) -> str:
    """The mnemonic of a (possibly extended) rcode, exactly as dns.rcode.to_text gives it; else its number."""
    return _RCODES.get(code) or str(code)


# --- encoding a query ---------------------------------------------------------------------------------------------

_HEADER: Final = struct.Struct("!HHHHHH")
_RR_HEADER: Final = struct.Struct("!HHIH")
_SOA_TAIL: Final = struct.Struct("!IIIII")
_U16: Final = struct.Struct("!H")
_OPT_TYPE: Final = 41
_TSIG_TYPE: Final = 250
_EDE_OPTION: Final = 15
_FLAG_QR: Final = 0x8000
_FLAG_TC: Final = 0x0200
_FLAG_RD: Final = 0x0100
# A length octet per label size, so building a name is a join of ready-made pieces.
_LENGTH_OCTET: Final = tuple(bytes((n,)) for n in range(64))


def encode_query(qid: int, qname: str, qtype: int, *, payload: int = 1232, rd: bool = True) -> bytes:
    """A query for (qname, qtype, IN) with id `qid`, RD per `rd`, and an EDNS0 OPT record.

    The OPT record advertises `payload` octets, EDNS version 0, DO clear, no options: byte for byte what
    dns.message.make_query(qname, qtype, use_edns=0, payload=payload) renders.  `qname` is dotted text (the
    final dot optional, "." for the root) of plain labels, sent with its case as given; presentation escapes
    are not interpreted, so a backslash is refused rather than sent literally.  Raises WireError for an empty
    label, a label over 63 octets, a name over 255 octets or a non-ASCII name, and ValueError for an id,
    type or payload outside 0..65535.
    """
    if qname == ".":
        name = b"\x00"
    else:
        text = qname[:-1] if qname.endswith(".") else qname
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise WireError(f"name {qname!r} is not ASCII (kdiag sends A-labels)") from None
        if b"\\" in raw:
            raise WireError(f"name {qname!r} has a backslash escape, which encode_query does not interpret")
        if len(raw) > 253:  # on the wire: a length octet before the first label and the root octet after the last
            raise WireError(f"name {qname!r} is longer than 255 octets on the wire")
        pieces: list[bytes] = []
        for label in raw.split(b"."):
            size = len(label)
            if size == 0:
                raise WireError(f"name {qname!r} has an empty label")
            if size > 63:
                raise WireError(f"name {qname!r} has a label longer than 63 octets")
            pieces.append(_LENGTH_OCTET[size])
            pieces.append(label)
        pieces.append(b"\x00")
        name = b"".join(pieces)
    try:
        return b"".join((
            _HEADER.pack(qid, _FLAG_RD if rd else 0, 1, 0, 0, 1),
            name,
            struct.pack("!HH", qtype, 1),
            # The OPT pseudo-RR (RFC 6891 §6.1.2): root owner, class = UDP payload, TTL = ext-rcode 0,
            # version 0, flags 0 (DO clear), no rdata.
            b"\x00",
            _RR_HEADER.pack(_OPT_TYPE, payload, 0, 0),
        ))
    except struct.error as exc:
        raise ValueError(f"id {qid}, type {qtype} and payload {payload} must each be in 0..65535") from exc


# --- decoded values -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Soa:
    """The fields of an SOA record; mname and rname lowercase without the final dot ("." for the root)."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass(frozen=True, slots=True)
class Caa:
    """A CAA record (RFC 8659) as served: any tag octets are kept (Boulder and miekg/dns accept them)."""

    flags: int
    tag: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Rr:
    """One resource record of the answer or authority section.

    name: the owner, lowercase, no final dot, "." for the root, odd octets escaped as dnspython does.
    type, rclass: the numeric type and class.
    ttl: seconds; a TTL with the top bit set reads as 0 (RFC 2181 §8, as dnspython does).
    data: typed for the types kdiag reads: the address text (A, AAAA); the target name, like `name`
        (CNAME, NS, PTR, DNAME); Soa; Caa.  Any other type (or a record of a class other than IN): the raw
        rdata octets, any names in them left compressed.
    text: the rdata's presentation text, identical to dnspython's rdata.to_text() (names keep their case and
        end with a dot).
    """

    name: str
    type: int
    rclass: int
    ttl: int
    data: str | Soa | Caa | bytes
    text: str


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed response (or query): header, question, answer and authority records, rcode, EDE.

    flags: the 16-bit header flags word as sent.
    rcode: the full rcode, the header's 4 bits extended by the OPT record's 8 (RFC 6891 §6.1.3).
    question: (name lowercase without the final dot, type, class) per question.
    answer, authority: the records; the additional section is read only for its OPT record.
    ede: the Extended DNS Errors (RFC 8914) as (info-code, extra text, "" when none).
    """

    id: int
    flags: int
    rcode: int
    question: tuple[tuple[str, int, int], ...]
    answer: tuple[Rr, ...]
    authority: tuple[Rr, ...]
    ede: tuple[tuple[int, str], ...]

    @property
    def truncated(self) -> bool:
        """The TC bit: the answer did not fit (retry over TCP)."""
        return bool(self.flags & _FLAG_TC)

    @property
    def is_response(self) -> bool:
        """The QR bit."""
        return bool(self.flags & _FLAG_QR)


# --- decoding -----------------------------------------------------------------------------------------------------

# dnspython's limit (dns.name.MAX_COMPRESSION_POINTER_CHAIN).  The backward-only rule below already makes
# every name terminate, but without a cap a 64 KiB message of thousands of records each sent down one
# pointer chain thousands of hops long would cost billions of steps.
_MAX_HOPS: Final = 16

# Label octets that Name.to_text() prints as themselves: 0x21..0x7E less b'"().;\\@$'.  The name's own
# separating dots are kept out of this set too: see _name_text.
_NAME_PLAIN: Final = bytes(c for c in range(0x21, 0x7F) if c not in b'"().;\\@$')
# Octets that dns.rdata._escapify (TXT and CAA quoted strings) prints as themselves: 0x20..0x7E less '"' and '\'.
_QUOTED_PLAIN: Final = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def _escape_table(plain: bytes) -> tuple[str, ...]:
    """Per octet: itself if plain, else backslash + the octet if printable (a special), else backslash + 3 digits."""
    return tuple(chr(c) if c in plain else ("\\" + chr(c) if 0x20 < c < 0x7F else f"\\{c:03d}") for c in range(256))


_NAME_ESCAPES: Final = _escape_table(_NAME_PLAIN)
_QUOTED_ESCAPES: Final = _escape_table(_QUOTED_PLAIN)


def _escape_label(label: bytes) -> str:
    """A label as dnspython's Name.to_text() prints it."""
    if not label.translate(None, _NAME_PLAIN):
        return label.decode("ascii")
    return "".join([_NAME_ESCAPES[c] for c in label])


def _quoted(data: bytes) -> str:
    """The inside of a quoted string as dnspython's TXT and CAA to_text() print it."""
    if not data.translate(None, _QUOTED_PLAIN):
        return data.decode("ascii")
    return "".join([_QUOTED_ESCAPES[c] for c in data])


def _name(wire: bytes, pos: int, bound: int) -> tuple[str, int]:
    """Read the (possibly compressed) name at `pos`, which may not reach `bound`.

    Returns the name's presentation text without the final dot ("" for the root), case kept, and the offset
    just after it.  The pointer rules are dnspython's (dns.name.from_wire_parser): each pointer must point
    strictly before the start of the run of labels it ends (the name's own start for the first), the run it
    jumps to must end before that start, and at most _MAX_HOPS pointers are followed.  So every name
    terminates, no label is read twice, and whatever dnspython accepts is accepted here.
    """
    start = segment = pos
    end = 0  # where the name ends in the message: after its first pointer, or after its root octet
    hops = 0
    size = 1  # octets on the wire, counting the root octet
    labels: list[bytes] = []
    while True:
        if pos >= bound:
            raise WireError(f"name at offset {start} runs past the end of its data (offset {bound})")
        length = wire[pos]
        if length == 0:
            pos += 1
            break
        if length < 0x40:
            pos += 1
            nxt = pos + length
            if nxt > bound:
                raise WireError(f"label at offset {pos - 1} of the name at offset {start} runs past offset {bound}")
            size += length + 1
            if size > 255:
                raise WireError(f"name at offset {start} is longer than 255 octets")
            labels.append(wire[pos:nxt])
            pos = nxt
        elif length >= 0xC0:
            if pos + 2 > bound:
                raise WireError(f"compression pointer at offset {pos} runs past offset {bound}")
            target = ((length & 0x3F) << 8) | wire[pos + 1]
            if target >= segment:
                raise WireError(f"compression pointer at offset {pos} to offset {target} does not point back "
                                f"before offset {segment}")
            hops += 1
            if hops > _MAX_HOPS:
                raise WireError(f"name at offset {start} follows more than {_MAX_HOPS} compression pointers")
            if not end:
                end = pos + 2
            bound = segment
            segment = pos = target
        else:
            raise WireError(f"label type {length >> 6:#04b} at offset {pos} (only 0b00 and 0b11 exist)")
    if not labels:
        return "", end or pos
    joined = b".".join(labels)
    # Fast path: nothing to escape.  The deletion leaves only octets Name.to_text() would escape, plus the
    # separators; a dot inside a label shows as one dot too many.
    leftover = joined.translate(None, _NAME_PLAIN)
    if len(leftover) == len(labels) - 1 and not leftover.strip(b"."):
        return joined.decode("ascii"), end or pos
    return ".".join([_escape_label(label) for label in labels]), end or pos


def _exact(pos: int, end: int, rtype: int) -> None:
    """dnspython's rule: a record's fields must use its rdata exactly."""
    if pos != end:
        raise WireError(f"{type_text(rtype)} rdata ending at offset {end} has {end - pos} octets left over")


def _generic_text(wire: bytes, rclass: int, rtype: int, pos: int, rdlen: int) -> str:
    """Presentation text of a type this module does not parse: dnspython's, imported only now.

    dnspython is handed the whole message so it can follow the compression pointers some servers use
    anyway; if it refuses the rdata, the RFC 3597 generic form (still dnspython's spelling of it).
    """
    import dns.rdata  # the rare path: keep dnspython's import cost off the common one
    import dns.rdataclass
    import dns.rdatatype

    klass = dns.rdataclass.RdataClass.make(rclass)
    kind = dns.rdatatype.RdataType.make(rtype)
    try:
        return dns.rdata.from_wire(klass, kind, wire, pos, rdlen).to_text()
    except Exception:  # any refusal of dnspython's (FormError, ValueError, ...) means "no typed form"
        return dns.rdata.GenericRdata(klass, kind, wire[pos:pos + rdlen]).to_text()


def _rr_header(wire: bytes, pos: int, size: int, section: str) -> tuple[str, int, int, int, int, int]:
    """A record's owner and fixed header from `pos`: (owner, type, class, TTL, rdata start, rdata end)."""
    owner, pos = _name(wire, pos, size)
    if pos + 10 > size:
        raise WireError(f"{section} record header at offset {pos} runs past the end ({size} octets)")
    rtype, rclass, ttl, rdlen = _RR_HEADER.unpack_from(wire, pos)
    pos += 10
    end = pos + rdlen
    if end > size:
        raise WireError(f"{section} rdata at offset {pos} ({rdlen} octets) runs past the end ({size} octets)")
    return owner, rtype, rclass, ttl, pos, end


def _records(wire: bytes, pos: int, count: int, section: str) -> tuple[list[Rr], int]:
    """Parse `count` answer or authority records from `pos`: (the records, offset after them)."""
    size = len(wire)
    out: list[Rr] = []
    for _ in range(count):
        owner, rtype, rclass, ttl, pos, end = _rr_header(wire, pos, size, section)
        rdlen = end - pos
        if ttl > 0x7FFFFFFF:  # RFC 2181 §8: a TTL with the top bit set is read as zero; dnspython does too
            ttl = 0
        data: str | Soa | Caa | bytes
        if rclass != 1:
            # Outside IN, types like A mean other things (CH A holds a name): leave them to dnspython.
            if rtype == _OPT_TYPE or rtype == _TSIG_TYPE:
                raise WireError(f"{type_text(rtype)} record at offset {pos - 10} outside the additional section")
            data = wire[pos:end]
            text = _generic_text(wire, rclass, rtype, pos, rdlen)
        elif rtype == 1:  # A
            if rdlen != 4:
                raise WireError(f"A rdata at offset {pos} has {rdlen} octets, not 4")
            data = text = socket.inet_ntop(socket.AF_INET, wire[pos:end])
        elif rtype == 5 or rtype == 2 or rtype == 12 or rtype == 39:  # CNAME, NS, PTR, DNAME
            # DNAME targets may not be sent compressed (RFC 6672 §2.5); dnspython refuses them compressed,
            # we follow them: harmless, and kdiag would rather read the record.
            target, after = _name(wire, pos, end)
            _exact(after, end, rtype)
            data = target.lower() or "."
            text = target + "."
        elif rtype == 28:  # AAAA
            if rdlen != 16:
                raise WireError(f"AAAA rdata at offset {pos} has {rdlen} octets, not 16")
            # glibc's inet_ntop formats exactly like dns.ipv6.inet_ntoa (RFC 5952, ::ffff:a.b.c.d); the
            # tests check it.
            data = text = socket.inet_ntop(socket.AF_INET6, wire[pos:end])
        elif rtype == 257:  # CAA
            if rdlen < 2 or 2 + wire[pos + 1] > rdlen:
                raise WireError(f"CAA rdata at offset {pos} ({rdlen} octets) is shorter than its tag")
            flags = wire[pos]
            after = pos + 2 + wire[pos + 1]
            tag = wire[pos + 2:after]
            value = wire[after:end]
            data = Caa(flags, tag, value)
            # dnspython accepts only alphanumeric tags, printed as they are; print any other tag's octets
            # the way a name's label is printed, so the text stays one token.
            tag_text = tag.decode("ascii") if tag.isalnum() else _escape_label(tag)
            text = f'{flags} {tag_text} "{_quoted(value)}"'
        elif rtype == 6:  # SOA
            mname, after = _name(wire, pos, end)
            rname, after = _name(wire, after, end)
            if after + 20 != end:
                raise WireError(f"SOA rdata at offset {pos} does not end with its five 32-bit fields")
            serial, refresh, retry, expire, minimum = _SOA_TAIL.unpack_from(wire, after)
            data = Soa(mname.lower() or ".", rname.lower() or ".", serial, refresh, retry, expire, minimum)
            # "" (the root) + "." is ".", as dnspython prints the root.
            text = f"{mname}. {rname}. {serial} {refresh} {retry} {expire} {minimum}"
        elif rtype == 16:  # TXT
            strings: list[str] = []
            at = pos
            while at < end:
                nxt = at + 1 + wire[at]
                if nxt > end:
                    raise WireError(f"TXT string at offset {at} runs past its rdata (offset {end})")
                strings.append(f'"{_quoted(wire[at + 1:nxt])}"')
                at = nxt
            if not strings:  # RFC 1035 §3.3.14: one or more strings; dnspython refuses none too
                raise WireError(f"TXT rdata at offset {pos} has no strings")
            data = wire[pos:end]
            text = " ".join(strings)
        elif rtype == 15:  # MX: typed text only, the data stays raw
            if rdlen < 3:
                raise WireError(f"MX rdata at offset {pos} ({rdlen} octets) is too short")
            exchange, after = _name(wire, pos + 2, end)
            _exact(after, end, rtype)
            data = wire[pos:end]
            text = f"{_U16.unpack_from(wire, pos)[0]} {exchange}."
        elif rtype == _OPT_TYPE or rtype == _TSIG_TYPE:
            # RFC 6891 §6.1.1 and RFC 8945 §5.1: additional section only; dnspython refuses them elsewhere.
            raise WireError(f"{type_text(rtype)} record at offset {pos - 10} outside the additional section")
        else:
            data = wire[pos:end]
            text = _generic_text(wire, rclass, rtype, pos, rdlen)
        out.append(Rr(owner.lower() or ".", rtype, rclass, ttl, data, text))
        pos = end
    return out, pos


def _ede(wire: bytes, pos: int, end: int) -> list[tuple[int, str]]:
    """The RFC 8914 options among the OPT rdata's options in wire[pos:end]."""
    found: list[tuple[int, str]] = []
    while pos < end:
        if pos + 4 > end:
            raise WireError(f"EDNS option header at offset {pos} runs past the OPT rdata (offset {end})")
        code, length = struct.unpack_from("!HH", wire, pos)
        pos += 4
        nxt = pos + length
        if nxt > end:
            raise WireError(f"EDNS option {code} at offset {pos - 4} runs past the OPT rdata (offset {end})")
        if code == _EDE_OPTION:
            if length < 2:
                raise WireError(f"EDE option at offset {pos - 4} is shorter than its info-code")
            text = wire[pos + 2:nxt]
            if text.endswith(b"\x00"):  # "MAY be null-terminated" (RFC 8914 §2); dnspython drops one NUL too
                text = text[:-1]
            # dnspython refuses the whole message on invalid UTF-8; a diagnostics tool would rather show it.
            found.append((_U16.unpack_from(wire, pos)[0], text.decode("utf-8", errors="replace")))
        pos = nxt
    return found


def decode(wire: bytes) -> Message:
    """Parse a DNS message; WireError (never another exception, never a hang) for anything malformed.

    Structural rules are dnspython's: every count, length and pointer checked against the data, names at
    most 255 octets, rdata of the parsed types used exactly, one OPT record, in the additional section, owned
    by the root.  Octets after the last section are ignored (dnspython's from_wire refuses them unless
    ignore_trailing=True; they carry nothing and some middleboxes pad).  Records of the additional section
    other than the OPT are skipped over, not parsed.
    """
    try:
        return _decode(wire)
    except (IndexError, struct.error) as exc:  # a missed check: still the promised exception type
        raise WireError(f"malformed message ({exc})") from exc


def _decode(wire: bytes) -> Message:
    """decode() without its safety net, so the tests can see that every check is explicit."""
    size = len(wire)
    if size < 12:
        raise WireError(f"message of {size} octets is shorter than the 12-octet header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire, 0)
    pos = 12
    question: list[tuple[str, int, int]] = []
    for _ in range(qdcount):
        qname, pos = _name(wire, pos, size)
        if pos + 4 > size:
            raise WireError(f"question type and class at offset {pos} run past the end ({size} octets)")
        qtype, qclass = struct.unpack_from("!HH", wire, pos)
        pos += 4
        question.append((qname.lower() or ".", qtype, qclass))
    answer, pos = _records(wire, pos, ancount, "answer")
    authority, pos = _records(wire, pos, nscount, "authority")
    rcode = flags & 0xF
    ede: list[tuple[int, str]] = []
    seen_opt = False
    for _ in range(arcount):
        at = pos
        owner, rtype, _rclass, ttl, pos, end = _rr_header(wire, pos, size, "additional")
        if rtype == _OPT_TYPE:
            if seen_opt:
                raise WireError(f"second OPT record at offset {at}")
            if owner:
                raise WireError(f"OPT record at offset {at} is not owned by the root")
            seen_opt = True
            rcode |= (ttl >> 24) << 4  # RFC 6891 §6.1.3: the upper 8 of 12 rcode bits
            ede = _ede(wire, pos, end)
        pos = end
    # Octets from `pos` on are ignored (see the docstring).
    return Message(qid, flags, rcode, tuple(question), tuple(answer), tuple(authority), tuple(ede))
