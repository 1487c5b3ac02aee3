"""kdiag.probes.wire against dnspython: the same fields from the same octets, and only WireError on bad input.

dnspython builds the messages (with its name compression) and parses them back as the oracle; the codec must
agree field for field.  Then the inputs dnspython never builds: random octets, every truncation, bit flips and
hand-made oddities (pointer loops, forward pointers, CAA tags dnspython refuses).  No network.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.ipv4
import dns.ipv6
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CAA
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.DNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kdiag.probes import wire
from kdiag.probes.wire import Caa, Message, Soa, WireError, decode, encode_query

IN = dns.rdataclass.IN
T = dns.rdatatype
SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- the oracle: dnspython's parse, in the codec's shapes -----------------------------------------------------


def plain(name: dns.name.Name) -> str:
    """How kdiag shows a name: lowercase, no final dot, "." for the root."""
    return name.to_text(omit_final_dot=True).lower() if name != dns.name.root else "."


def oracle_text(rd: dns.rdata.Rdata) -> str:
    try:
        return rd.to_text()
    except Exception:  # the codec falls back to the generic form when dnspython cannot print a record
        return dns.rdata.GenericRdata(rd.rdclass, rd.rdtype, rd.to_wire()).to_text()


def oracle_data(rd: Any) -> object:
    """The typed data the codec promises, or None for the types it keeps as raw octets."""
    if rd.rdclass != IN:
        return None
    if rd.rdtype in (T.A, T.AAAA):
        return rd.address
    if rd.rdtype in (T.CNAME, T.NS, T.PTR, T.DNAME):
        return plain(rd.target)
    if rd.rdtype == T.SOA:
        return Soa(plain(rd.mname), plain(rd.rname), rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum)
    if rd.rdtype == T.CAA:
        return Caa(rd.flags, rd.tag, rd.value)
    return None


def check_raw(data: object, rd: dns.rdata.Rdata, message: bytes) -> None:
    """Raw rdata: the octets dnspython renders, or (names compressed, e.g. MX) octets of the message that
    dnspython reads as the same rdata.  rfind: a later copy of the octets still has its pointers backwards."""
    assert isinstance(data, bytes)
    if data != rd.to_wire():
        at = message.rfind(data)
        assert at > 0
        assert dns.rdata.from_wire(rd.rdclass, rd.rdtype, message, at, len(data)) == rd


def assert_same(message: bytes, ours: Message | None = None) -> dns.message.Message:
    """Decode `message` with both and compare every field; returns dnspython's parse."""
    theirs = dns.message.from_wire(message, one_rr_per_rrset=True, ignore_trailing=True)
    if ours is None:
        ours = decode(message)
    assert ours.id == theirs.id
    assert ours.flags == int(theirs.flags)
    assert ours.rcode == int(theirs.rcode())
    assert ours.truncated == bool(theirs.flags & dns.flags.TC)
    assert ours.is_response == bool(theirs.flags & dns.flags.QR)
    assert ours.question == tuple((plain(q.name), q.rdtype, q.rdclass) for q in theirs.question)
    for mine, section in ((ours.answer, theirs.answer), (ours.authority, theirs.authority)):
        assert len(mine) == len(section)
        for rr, rrset in zip(mine, section, strict=True):
            assert len(rrset) == 1
            rd = rrset[0]
            assert (rr.name, rr.type, rr.rclass, rr.ttl) == (plain(rrset.name), rrset.rdtype, rrset.rdclass, rrset.ttl)
            assert rr.text == oracle_text(rd)
            expected = oracle_data(rd)
            if expected is None:
                check_raw(rr.data, rd, message)
            else:
                assert rr.data == expected
    assert ours.ede == tuple((int(o.code), o.text or "") for o in theirs.options
                             if o.otype == dns.edns.OptionType.EDE)
    return theirs


# --- strategies: responses dnspython builds -----------------------------------------------------------------------

LDH = st.from_regex(r"[A-Za-z0-9_](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True).map(str.encode)
# Octets Name.to_text() escapes: specials, space, controls, high bytes, and the dot inside a label.
ODD = st.one_of(st.binary(min_size=1, max_size=10),
                st.lists(st.sampled_from(list(b'.."().;\\@$ \x00\x7f\xff-aZ')), min_size=1, max_size=6).map(bytes))
LABEL = st.one_of(LDH, LDH, ODD)
NAMES = st.lists(LABEL, max_size=4).map(lambda labels: dns.name.Name([*labels, b""]))


def related(zone: dns.name.Name) -> st.SearchStrategy[dns.name.Name]:
    """Names around one zone, so dnspython compresses them into pointers at each other (and at the question)."""
    under = st.lists(LABEL, min_size=1, max_size=2).map(lambda labels: dns.name.Name([*labels, *zone.labels]))
    return st.one_of(st.just(zone), under, under, NAMES)


U8, U16, U32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF_FFFF)
AAAA_OCTETS = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x20, 0xDB8]) | U16, min_size=8, max_size=8).map(
    lambda chunks: b"".join(c.to_bytes(2, "big") for c in chunks))
CAA_TAGS = st.from_regex(rb"[A-Za-z0-9]{1,15}", fullmatch=True) | st.sampled_from([b"issue", b"issuewild", b"iodef"])


@st.composite
def rdatas(draw: st.DrawFn, names: st.SearchStrategy[dns.name.Name]) -> dns.rdata.Rdata:
    kind = draw(st.sampled_from(["A", "AAAA", "CNAME", "NS", "PTR", "DNAME", "SOA", "CAA", "TXT", "MX", "SRV",
                                 "TYPE65280"]))
    if kind == "A":
        return dns.rdtypes.IN.A.A(IN, T.A, dns.ipv4.inet_ntoa(draw(st.binary(min_size=4, max_size=4))))
    if kind == "AAAA":
        return dns.rdtypes.IN.AAAA.AAAA(IN, T.AAAA, dns.ipv6.inet_ntoa(draw(AAAA_OCTETS)))
    if kind in ("CNAME", "NS", "PTR", "DNAME"):
        cls = {"CNAME": dns.rdtypes.ANY.CNAME.CNAME, "NS": dns.rdtypes.ANY.NS.NS, "PTR": dns.rdtypes.ANY.PTR.PTR,
               "DNAME": dns.rdtypes.ANY.DNAME.DNAME}[kind]
        return cls(IN, T.from_text(kind), draw(names))
    if kind == "SOA":
        return dns.rdtypes.ANY.SOA.SOA(IN, T.SOA, draw(names), draw(names), *(draw(U32) for _ in range(5)))
    if kind == "CAA":
        return dns.rdtypes.ANY.CAA.CAA(IN, T.CAA, draw(U8), draw(CAA_TAGS), draw(st.binary(max_size=40)))
    if kind == "TXT":
        strings = draw(st.lists(st.binary(max_size=40) | st.text(max_size=20).map(str.encode), min_size=1,
                                max_size=3))
        return dns.rdtypes.ANY.TXT.TXT(IN, T.TXT, strings)
    if kind == "MX":
        return dns.rdtypes.ANY.MX.MX(IN, T.MX, draw(U16), draw(names))
    if kind == "SRV":
        return dns.rdtypes.IN.SRV.SRV(IN, T.SRV, draw(U16), draw(U16), draw(U16), draw(names))
    return dns.rdata.GenericRdata(IN, 65280, draw(st.binary(max_size=30)))


EDE_TEXT = st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=20) | st.just("stale\x00")
OPTIONS = st.lists(
    st.builds(dns.edns.EDEOption, st.integers(0, 30) | U16, EDE_TEXT)
    | st.builds(dns.edns.GenericOption, st.integers(65001, 65534), st.binary(max_size=10))
    | st.builds(dns.edns.NSIDOption, st.binary(max_size=10)),
    max_size=3)


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """A message rendered by dnspython: random flags, rcode, EDNS, records."""
    zone = draw(NAMES)
    names = related(zone)
    message = dns.message.Message(id=draw(U16))
    opcode = draw(st.sampled_from([0, 0, 0, 1, 2, 4]))  # not UPDATE (5): dnspython reads its sections differently
    bits = draw(st.lists(st.sampled_from([0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010]),
                         unique=True))
    edns = draw(st.booleans())
    rcode = draw(st.sampled_from([0, 2, 3, 5, 9, 15, 16, 23, 4095]) | st.integers(0, 4095)) if edns else \
        draw(st.integers(0, 15))
    message.flags = dns.opcode.to_flags(opcode) | sum(bits) | (rcode & 0xF)
    if edns:
        ednsflags = (rcode >> 4) << 24 | draw(st.sampled_from([0, 0x8000]))
        message.use_edns(draw(U8), ednsflags=ednsflags, payload=draw(st.integers(512, 65535)), options=draw(OPTIONS))
    for qname in draw(st.lists(names, max_size=2)):
        qtype = draw(st.sampled_from([T.A, T.AAAA, T.CNAME, T.CAA, T.TXT, T.SOA, T.NS]))
        message.find_rrset(message.question, qname, IN, qtype, create=True, force_unique=True)
    for section, most in ((message.answer, 6), (message.authority, 3), (message.additional, 3)):
        for _ in range(draw(st.integers(0, most))):
            section.append(dns.rrset.from_rdata(draw(names), draw(U32), draw(rdatas(names))))
    return message.to_wire()


@st.composite
def chains(draw: st.DrawFn) -> bytes:
    """kdiag's common case: an A/AAAA/CAA question answered by a CNAME chain, maybe NXDOMAIN with an SOA."""
    labels = draw(st.lists(LDH, min_size=1, max_size=3))
    qname = dns.name.Name([*labels, b"example", b"com", b""])
    qtype = draw(st.sampled_from(["A", "AAAA", "CAA"]))
    query = dns.message.make_query(qname, qtype, use_edns=0, payload=1232)
    response = dns.message.make_response(query)
    owner = qname
    for _ in range(draw(st.integers(0, 3))):
        target = dns.name.Name([*draw(st.lists(LDH, min_size=1, max_size=2)), *draw(st.sampled_from(
            [qname, dns.name.from_text("cdn.example.net."), dns.name.from_text("Edge.Example.COM.")])).labels])
        response.answer.append(dns.rrset.from_rdata(owner, draw(U32), dns.rdtypes.ANY.CNAME.CNAME(IN, T.CNAME, target)))
        owner = target
    if draw(st.booleans()):
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(dns.rrset.from_text(
            "example.com.", 900, "IN", "SOA", "ns1.Example.com. hostmaster.example.com. 2024 7200 3600 1209600 300"))
    else:
        value = {"A": "192.0.2.1", "AAAA": "2001:db8::1", "CAA": '0 issue "letsencrypt.org"'}[qtype]
        response.answer.append(dns.rrset.from_text(owner, 300, "IN", qtype, value))
    return response.to_wire()


def typical() -> bytes:
    """The benchmark's shape: 2-record CNAME chain and an A record, EDNS."""
    query = dns.message.make_query("www.Example.com", "A", use_edns=0, payload=1232)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME",
                                               "www.example.com.cdn.cloudflare.net."))
    response.answer.append(dns.rrset.from_text("www.example.com.cdn.cloudflare.net.", 300, "IN", "CNAME",
                                               "edge.cloudflare.net."))
    response.answer.append(dns.rrset.from_text("edge.cloudflare.net.", 60, "IN", "A", "104.16.1.2"))
    return response.to_wire()


# --- the oracle tests ---------------------------------------------------------------------------------------------


@SLOW
@given(responses())
def test_random_responses_decode_as_dnspython_reads_them(message: bytes) -> None:
    assert_same(message)


@SLOW
@given(chains())
def test_cname_chains_decode_as_dnspython_reads_them(message: bytes) -> None:
    assert_same(message)


def test_the_typical_response_field_by_field() -> None:
    octets = typical()
    message = decode(octets)
    assert message.is_response and not message.truncated and message.rcode == 0 and message.ede == ()
    assert message.question == (("www.example.com", 1, 1),)
    assert [(rr.name, rr.type, rr.ttl, rr.data, rr.text) for rr in message.answer] == [
        ("www.example.com", 5, 300, "www.example.com.cdn.cloudflare.net", "www.example.com.cdn.cloudflare.net."),
        ("www.example.com.cdn.cloudflare.net", 5, 300, "edge.cloudflare.net", "edge.cloudflare.net."),
        ("edge.cloudflare.net", 1, 60, "104.16.1.2", "104.16.1.2"),
    ]
    assert_same(octets, message)


def response_with(*records: str, rcode: int = 0, options: list[dns.edns.Option] | None = None,
                  edns: bool = True) -> bytes:
    query = dns.message.make_query("Q.example.", "A", use_edns=0 if edns else False)
    response = dns.message.make_response(query)
    if edns:
        response.use_edns(0, payload=1232, options=options or [])
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    for record in records:
        owner, ttl, rdtype, rest = record.split(" ", 3)
        response.answer.append(dns.rrset.from_text(owner, int(ttl), "IN", rdtype, rest))
    return response.to_wire()


@pytest.mark.parametrize("record, data, text", [
    ("Www.Example. 1 CNAME Target.EXAMPLE.net.", "target.example.net", "Target.EXAMPLE.net."),
    ("a. 1 CNAME .", ".", "."),
    ("a. 1 DNAME Sub.Example.", "sub.example", "Sub.Example."),
    ("a. 1 NS ns1.Example.net.", "ns1.example.net", "ns1.Example.net."),
    ("4.3.2.1.in-addr.arpa. 1 PTR Host.", "host", "Host."),
    ("a. 1 AAAA ::ffff:192.0.2.1", "::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ("a. 1 AAAA ::192.0.2.1", "::192.0.2.1", "::192.0.2.1"),
    ("a. 1 AAAA 2001:db8:0:1::1", "2001:db8:0:1::1", "2001:db8:0:1::1"),
    ("a. 1 AAAA 2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
    ("a. 1 SOA NS.a. Host\\.master.a. 1 2 3 4 5", Soa("ns.a", "host\\.master.a", 1, 2, 3, 4, 5),
     "NS.a. Host\\.master.a. 1 2 3 4 5"),
    ('a. 1 CAA 128 issue "letsencrypt.org; validationmethods=dns-01"',
     Caa(128, b"issue", b"letsencrypt.org; validationmethods=dns-01"),
     '128 issue "letsencrypt.org; validationmethods=dns-01"'),
    ('a. 1 CAA 0 iodef "mailto:\\"x\\"@example.com\\010\\255"', Caa(0, b"iodef", b'mailto:"x"@example.com\n\xff'),
     '0 iodef "mailto:\\"x\\"@example.com\\010\\255"'),
    ('a. 1 TXT "v=spf1 -all" "" "\\\\ \\"q\\" \\000\\200"', b'\x0bv=spf1 -all\x00\x08\\ "q" \x00\xc8',
     '"v=spf1 -all" "" "\\\\ \\"q\\" \\000\\200"'),
    ("a. 1 MX 10 Mail.Example.net.", None, "10 Mail.Example.net."),
    ("a. 1 SRV 1 2 443 Svc.Example.net.", None, "1 2 443 Svc.Example.net."),
    ("a. 1 TYPE65280 \\# 3 010203", b"\x01\x02\x03", "\\# 3 010203"),
    ("a. 1 TYPE65280 \\# 0", b"", "\\# 0 "),
    ("a. 1 HTTPS 1 . alpn=h2,h3", None, '1 . alpn="h2,h3"'),
])
def test_each_type(record: str, data: object, text: str) -> None:
    message = response_with(record)
    (rr,) = decode(message).answer
    assert rr.text == text
    if data is not None:
        assert rr.data == data
    assert_same(message)


def test_odd_octets_in_names_are_escaped_like_dnspython() -> None:
    owner = dns.name.Name([b"A.b", b'"().;\\@$', b" \x00\x7f\xff~!", b"Ex", b""])
    target = dns.name.Name([b"T\tx", b"Ex", b""])
    response = dns.message.make_response(dns.message.make_query(owner, "CNAME"))
    response.answer.append(dns.rrset.from_rdata(owner, 5, dns.rdtypes.ANY.CNAME.CNAME(IN, T.CNAME, target)))
    message = decode(response.to_wire())
    assert message.question[0][0] == 'a\\.b.\\"\\(\\)\\.\\;\\\\\\@\\$.\\032\\000\\127\\255~!.ex'
    (rr,) = message.answer
    assert rr.name == message.question[0][0]
    assert (rr.data, rr.text) == ("t\\009x.ex", "T\\009x.Ex.")
    assert_same(response.to_wire(), message)


@pytest.mark.parametrize("rcode", [0, 1, 2, 3, 4, 5, 15, 16, 17, 23, 24, 4095])
def test_rcodes_including_extended(rcode: int) -> None:
    message = response_with(rcode=rcode)
    assert decode(message).rcode == rcode
    assert wire.rcode_text(decode(message).rcode) == dns.rcode.to_text(rcode)
    assert_same(message)


def test_ede_options() -> None:
    options: list[dns.edns.Option] = [
        dns.edns.EDEOption(dns.edns.EDECode.DNSSEC_BOGUS, "RRSIG expired"),
        dns.edns.GenericOption(65001, b"\x00\x01"),
        dns.edns.EDEOption(dns.edns.EDECode.PROHIBITED),
        dns.edns.EDEOption(18, "zero terminated\x00"),
        dns.edns.EDEOption(49152, "ünïcode"),
    ]
    message = response_with(rcode=dns.rcode.SERVFAIL, options=options)
    assert decode(message).ede == ((6, "RRSIG expired"), (18, ""), (18, "zero terminated"), (49152, "ünïcode"))
    assert_same(message)


def test_no_edns_no_ede_and_a_plain_rcode() -> None:
    message = decode(response_with(rcode=dns.rcode.NXDOMAIN, edns=False))
    assert (message.rcode, message.ede) == (3, ())


def test_tc_and_qr_properties() -> None:
    header = struct.pack("!HHHHHH", 7, 0x8000 | 0x0200 | 0x0100, 0, 0, 0, 0)
    message = decode(header)
    assert message.truncated and message.is_response and message.flags == 0x8300
    assert not decode(struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0)).is_response


def test_ttl_with_the_top_bit_set_reads_as_zero() -> None:
    # RFC 2181 §8, and dnspython does the same.
    message = response_with("a. 2147483648 A 192.0.2.1", "b. 2147483647 A 192.0.2.2")
    assert [rr.ttl for rr in decode(message).answer] == [0, 2147483647]
    assert_same(message)


def test_trailing_octets_are_ignored() -> None:
    message = typical()
    assert decode(message + b"\x00junk") == decode(message)
    with pytest.raises(dns.message.TrailingJunk):  # dnspython's default refuses them
        dns.message.from_wire(message + b"\x00junk")


# --- hand-made messages: what dnspython does not build --------------------------------------------------------


def header(qd: int = 0, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x8180) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, flags, qd, an, ns, ar)


def rr(owner: bytes, rtype: int, rdata: bytes, rclass: int = 1, ttl: int = 60) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


QNAME = b"\x01a\x07example\x00"  # at offset 12
QUESTION = QNAME + b"\x00\x01\x00\x01"
PTR_Q = b"\xc0\x0c"  # a pointer to the question name
OPT = rr(b"\x00", 41, b"", rclass=1232, ttl=0)


def test_caa_with_a_tag_dnspython_refuses_keeps_its_octets() -> None:
    for tag, tag_text in [(b"issue-critical", "issue-critical"), (b"is sue", "is\\032sue"), (b"", ""),
                          (b"t\xffg;", "t\\255g\\;")]:
        rdata = bytes([0, len(tag)]) + tag + b'letsencrypt.org; "x"'
        message = header(qd=1, an=1) + QUESTION + rr(PTR_Q, 257, rdata)
        (record,) = decode(message).answer
        assert record.data == Caa(0, tag, b'letsencrypt.org; "x"')
        assert record.text == f'0 {tag_text} "letsencrypt.org; \\"x\\""'
        with pytest.raises(dns.exception.FormError, match="alphanumeric"):  # what kdiag must not inherit
            dns.message.from_wire(message)


def test_compressed_dname_target_is_followed() -> None:
    # RFC 6672 says not to compress it; dnspython refuses a compressed one; kdiag reads it anyway.
    message = header(qd=1, an=1) + QUESTION + rr(PTR_Q, 39, b"\x03sub" + PTR_Q)
    (record,) = decode(message).answer
    assert (record.data, record.text) == ("sub.a.example", "sub.a.example.")
    with pytest.raises(dns.name.DecompressionForbidden):
        dns.message.from_wire(message)


def test_a_record_outside_class_in_is_left_to_dnspython() -> None:
    # CH A holds a name and an address: the codec's IN parsing must not apply.
    rdata = b"\x02ns\x00\x00\x01"
    message = header(qd=1, an=1) + QUESTION + rr(PTR_Q, 1, rdata, rclass=3)
    (record,) = decode(message).answer
    assert (record.rclass, record.data, record.text) == (3, rdata, "ns. 1")
    assert_same(message)


def test_a_type_dnspython_cannot_parse_is_printed_generic() -> None:
    message = header(qd=1, an=1) + QUESTION + rr(PTR_Q, 33, b"\x00\x01")  # SRV too short for dnspython
    (record,) = decode(message).answer
    assert (record.data, record.text) == (b"\x00\x01", "\\# 2 0001")


def test_names_at_the_length_limits() -> None:
    longest = b"".join(b"\x3f" + b"x" * 63 for _ in range(3)) + b"\x3d" + b"y" * 61 + b"\x00"  # 255 octets
    assert len(longest) == 255
    message = header(qd=1) + longest + b"\x00\x01\x00\x01"
    assert decode(message).question[0][0].endswith("y" * 61)
    assert_same(message)
    too_long = b"".join(b"\x3f" + b"x" * 63 for _ in range(3)) + b"\x3e" + b"y" * 62 + b"\x00"
    with pytest.raises(WireError, match="255"):
        decode(header(qd=1) + too_long + b"\x00\x01\x00\x01")
    # Reached through a pointer: the total counts, not each run.
    prefix = b"\x3f" + b"x" * 63 + b"\x3f" + b"x" * 63 + b"\x3f" + b"x" * 63 + b"\x00"  # at offset 12
    message = header(qd=2) + prefix + b"\x00\x01\x00\x01" + b"\x3f" + b"z" * 63 + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    with pytest.raises(WireError, match="255"):
        decode(message)
    with pytest.raises(dns.name.NameTooLong):
        dns.message.from_wire(message)


@pytest.mark.parametrize("first, bad", [(0x40, "0b01"), (0x80, "0b10")])
def test_reserved_label_types(first: int, bad: str) -> None:
    with pytest.raises(WireError, match=bad):
        decode(header(qd=1) + bytes([first, 1]) + b"a\x00\x00\x01\x00\x01")


def test_a_pointer_to_itself_is_refused() -> None:
    with pytest.raises(WireError, match="does not point back"):
        decode(header(qd=1) + b"\xc0\x0c\x00\x01\x00\x01")


def test_a_pointer_loop_is_refused() -> None:
    # offset 12: label "a" then a pointer back to 12: each pass would add "a" for ever.
    with pytest.raises(WireError, match="does not point back"):
        decode(header(qd=1) + b"\x01a\xc0\x0c\x00\x01\x00\x01")
    # Two names pointing at each other.
    looped = header(qd=2) + b"\x01a\xc0\x12\x00\x01\x00\x01" + b"\x01b\xc0\x0c\x00\x01\x00\x01"
    with pytest.raises(WireError, match="does not point back"):
        decode(looped)


def test_a_forward_pointer_is_refused() -> None:
    message = header(qd=2) + b"\xc0\x12\x00\x01\x00\x01" + QUESTION
    with pytest.raises(WireError, match="offset 12 to offset 18"):
        decode(message)
    with pytest.raises(dns.name.BadPointer):
        dns.message.from_wire(message)


def test_a_pointer_into_the_name_it_ends_is_refused() -> None:
    # Like dnspython: a pointer must point before the start of the name (or of the run) it ends.
    message = header(qd=1) + b"\x01a\x01b\xc0\x0e\x00\x01\x00\x01"
    with pytest.raises(WireError):
        decode(message)
    with pytest.raises(dns.name.BadPointer):
        dns.message.from_wire(message)


def pointer_chain(hops: int) -> bytes:
    """A message whose last owner name reaches the question name through `hops` pointers."""
    message = header(qd=1, an=hops) + QUESTION
    target = 12
    for _ in range(hops - 1):
        # An unknown-type record whose rdata is a pointer to the previous target.
        at = len(message) + 2 + 10
        message += rr(PTR_Q, 65280, struct.pack("!H", 0xC000 | target))
        target = at
    return message + rr(struct.pack("!H", 0xC000 | target), 1, b"\xc0\x00\x02\x01")


def test_pointer_chains_are_capped_like_dnspython() -> None:
    decoded = decode(pointer_chain(16))
    assert decoded.answer[-1].name == "a.example"
    assert_same(pointer_chain(16), decoded)
    with pytest.raises(WireError, match="more than 16"):
        decode(pointer_chain(17))
    with pytest.raises(dns.name.PointerChainTooLong):
        dns.message.from_wire(pointer_chain(17))


def test_a_pointer_target_must_end_before_the_run_that_points_at_it() -> None:
    # dnspython's restrict_end.  Question 1 "a." at 12..18 (its class ends in 0x01 at 18); question 2 at 19 is a
    # pointer to 18, so the run from 18 is a 1-octet label that would go on into the pointer itself.  A parser
    # without the rule reads the label 0xc0, then an 18-octet label over question 2's type, class and padding.
    message = header(qd=2) + b"\x01a\x00\x00\x01\x00\x01" + b"\xc0\x12" + b"\x00\x01\x00\x01" + b"x" * 14 + b"\x00"
    with pytest.raises(WireError, match="runs past offset 19"):
        decode(message)
    with pytest.raises(dns.exception.FormError):
        dns.message.from_wire(message, ignore_trailing=True)


def test_fixed_size_types_need_their_size() -> None:
    for rtype, rdata in [(1, b"\x01\x02\x03"), (1, b"\x01\x02\x03\x04\x05"), (28, b"\x00" * 4), (28, b"\x00" * 17)]:
        with pytest.raises(WireError, match="not"):
            decode(header(qd=1, an=1) + QUESTION + rr(PTR_Q, rtype, rdata))


@pytest.mark.parametrize("rtype, rdata", [
    (5, PTR_Q + b"\x00"),  # a CNAME with an octet after its name
    (5, b"\x03sub"),  # a CNAME whose name runs out of rdata
    (6, PTR_Q + PTR_Q + b"\x00" * 19),  # an SOA one octet short
    (6, PTR_Q + PTR_Q + b"\x00" * 21),  # an SOA one octet long
    (15, b"\x00\x0a"),  # an MX without its name
    (15, b"\x00\x0a" + PTR_Q + b"\x00"),  # an MX with an octet after its name
    (16, b""),  # a TXT without strings
    (16, b"\x05abc"),  # a TXT string running out of rdata
    (257, b"\x00"),  # a CAA without its tag length
    (257, b"\x00\x05iss"),  # a CAA tag running out of rdata
])
def test_rdata_that_does_not_fit_its_type(rtype: int, rdata: bytes) -> None:
    message = header(qd=1, an=1) + QUESTION + rr(PTR_Q, rtype, rdata)
    with pytest.raises(WireError):
        decode(message)
    with pytest.raises((dns.exception.FormError, ValueError)):
        dns.message.from_wire(message)


@pytest.mark.parametrize("body, what", [
    (rr(PTR_Q, 41, b""), "outside the additional"),  # OPT in the answer
    (rr(PTR_Q, 250, b""), "outside the additional"),  # TSIG in the answer
])
def test_pseudo_records_outside_the_additional_section(body: bytes, what: str) -> None:
    with pytest.raises(WireError, match=what):
        decode(header(qd=1, an=1) + QUESTION + body)


def test_opt_rules() -> None:
    with pytest.raises(WireError, match="second OPT"):
        decode(header(qd=1, ar=2) + QUESTION + OPT + OPT)
    with pytest.raises(WireError, match="root"):
        decode(header(qd=1, ar=1) + QUESTION + rr(PTR_Q, 41, b"", rclass=1232))
    for options in (b"\x00\x0f", b"\x00\x0f\x00\x05\x00\x01", b"\x00\x0f\x00\x01\x00"):
        with pytest.raises(WireError):
            decode(header(qd=1, ar=1) + QUESTION + rr(b"\x00", 41, options, rclass=1232))
    # Other records of the additional section are skipped, not parsed (dnspython would refuse this A).
    skipped = header(qd=1, ar=2) + QUESTION + rr(PTR_Q, 1, b"\x01") + OPT
    assert decode(skipped).ede == ()


def test_ede_text_that_is_not_utf8_is_replaced_not_refused() -> None:
    opt = rr(b"\x00", 41, b"\x00\x0f\x00\x05\x00\x12ab\xff", rclass=1232)
    assert decode(header(qd=1, ar=1) + QUESTION + opt).ede == ((18, "ab\ufffd"),)


def test_an_extended_rcode_needs_the_opt_record() -> None:
    opt = rr(b"\x00", 41, b"", rclass=1232, ttl=0x01000000)  # upper bits 1: BADVERS with a header rcode of 0
    assert decode(header(qd=1, ar=1) + QUESTION + opt).rcode == 16
    assert decode(header(qd=1, ar=1, flags=0x8183) + QUESTION + opt).rcode == 19


def test_short_header() -> None:
    for size in range(12):
        with pytest.raises(WireError, match="header"):
            decode(bytes(size))


# --- robustness: only WireError, and never a different answer from dnspython's ----------------------------------


def only_wire_error(message: bytes) -> Message | None:
    # The internal _decode: decode()'s safety net would hide a missing check behind a vaguer WireError.
    try:
        return wire._decode(message)
    except WireError:
        return None


def agrees_with_dnspython_if_it_accepts(message: bytes) -> None:
    """If dnspython reads a message, the codec must read it the same way (it is never stricter)."""
    ours = only_wire_error(message)
    try:
        theirs = dns.message.from_wire(message, one_rr_per_rrset=True, ignore_trailing=True)
    except Exception:
        return
    if dns.opcode.from_flags(int(theirs.flags)) == dns.opcode.UPDATE:
        return  # dnspython reads UPDATE sections with their own rules; kdiag never sees one
    assert ours is not None, message
    assert_same(message, ours)


@SLOW
@given(st.binary(max_size=300))
def test_random_octets_raise_only_wire_error(data: bytes) -> None:
    only_wire_error(data)
    try:
        decode(data)
    except WireError:
        pass


@SLOW
@given(st.tuples(U16, U16, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
       st.binary(max_size=200))
def test_random_bodies_behind_a_plausible_header(fields: tuple[int, ...], body: bytes) -> None:
    message = struct.pack("!HHHHHH", *fields) + body
    agrees_with_dnspython_if_it_accepts(message)


@settings(SLOW, max_examples=40)
@given(responses() | chains())
@example(typical())
def test_every_truncation_is_a_wire_error(message: bytes) -> None:
    for size in range(len(message)):
        assert only_wire_error(message[:size]) is None, size


@settings(SLOW, max_examples=15)
@given(responses() | chains())
@example(typical())
def test_every_bit_flip_is_read_as_dnspython_reads_it_or_refused(message: bytes) -> None:
    for at in range(len(message)):
        for bit in range(8):
            flipped = bytearray(message)
            flipped[at] ^= 1 << bit
            agrees_with_dnspython_if_it_accepts(bytes(flipped))


@SLOW
@given(responses() | chains(), st.data())
def test_random_octet_changes_are_read_as_dnspython_reads_them_or_refused(message: bytes, data: st.DataObject) -> None:
    changed = bytearray(message)
    for _ in range(data.draw(st.integers(1, 4))):
        changed[data.draw(st.integers(0, len(message) - 1))] = data.draw(
            st.sampled_from([0, 1, 0xC0, 0xC0 | 0x3F, 0x3F, 0x40, 0xFF]) | U8)
    agrees_with_dnspython_if_it_accepts(bytes(changed))


def test_the_safety_net_turns_a_missed_check_into_wire_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message: bytes) -> Message:
        raise IndexError("index out of range")

    monkeypatch.setattr(wire, "_decode", broken)
    with pytest.raises(WireError, match="malformed"):
        decode(b"")


# --- encode_query ---------------------------------------------------------------------------------------------

QUERY_NAMES = st.lists(LDH, min_size=1, max_size=5).map(lambda labels: b".".join(labels).decode())


@SLOW
@given(U16, QUERY_NAMES, st.booleans(), st.sampled_from([1, 28, 5, 257, 16, 65280]) | U16,
       st.sampled_from([512, 1232, 4096]) | U16, st.booleans())
def test_queries_are_what_dnspython_builds(qid: int, qname: str, dot: bool, qtype: int, payload: int,
                                           rd: bool) -> None:
    ours = encode_query(qid, qname + ("." if dot else ""), qtype, payload=payload, rd=rd)
    expected = dns.message.make_query(qname, qtype, use_edns=0, payload=payload, id=qid, flags=0)
    if rd:
        expected.flags |= dns.flags.RD
    assert ours == expected.to_wire()
    parsed = dns.message.from_wire(ours)
    assert (parsed.id, int(parsed.flags), parsed.edns, parsed.payload, parsed.ednsflags, parsed.options) == (
        qid, 0x0100 if rd else 0, 0, payload, 0, ())
    assert [(q.name.to_text(), q.rdtype, q.rdclass) for q in parsed.question] == [(qname + ".", qtype, IN)]
    message = decode(ours)
    assert not message.is_response and message.question == ((qname.lower(), qtype, 1),)


def test_root_and_default_query() -> None:
    assert encode_query(1, ".", 2) == dns.message.make_query(".", "NS", use_edns=0, payload=1232, id=1).to_wire()
    assert decode(encode_query(1, ".", 2)).question == ((".", 2, 1),)


@pytest.mark.parametrize("qname", [
    "a..b", "", "..", ".a", "a.b..", "x" * 64 + ".com", ".".join(["x" * 63] * 4), "bücher.example", "a\\.b.c",
])
def test_names_a_query_cannot_carry(qname: str) -> None:
    with pytest.raises(WireError):
        encode_query(1, qname, 1)


def test_the_longest_query_name() -> None:
    longest = ".".join(["x" * 63] * 3 + ["y" * 61])  # 255 octets on the wire
    assert encode_query(1, longest, 1) == dns.message.make_query(longest, "A", use_edns=0, payload=1232, id=1,
                                                                 flags=dns.flags.RD).to_wire()
    with pytest.raises(WireError, match="255"):
        encode_query(1, longest + "y", 1)


@pytest.mark.parametrize("qid, qtype, payload", [(65536, 1, 1232), (-1, 1, 1232), (1, 65536, 1232), (1, 1, 70000)])
def test_numbers_out_of_range(qid: int, qtype: int, payload: int) -> None:
    with pytest.raises(ValueError):
        encode_query(qid, "a.example", qtype, payload=payload)


# --- mnemonics ---------------------------------------------------------------------------------------------------


def test_type_text_is_dnspythons_for_every_code() -> None:
    assert [wire.type_text(code) for code in range(65536)] == [dns.rdatatype.to_text(code) for code in range(65536)]


@pytest.mark.parametrize("text", ["A", "a", "Caa", "NSAP-PTR", "nsap_ptr", "TYPE65280", "type1", "TYPE0", "TYPE00257",
                                  "HTTPS", "ANY", "OPT", "SVCB"])
def test_type_code_matches_dnspython(text: str) -> None:
    assert wire.type_code(text) == dns.rdatatype.from_text(text)


def test_type_code_round_trips_every_mnemonic() -> None:
    for code in range(65536):
        assert wire.type_code(wire.type_text(code)) == code


@given(st.text(max_size=12) | st.from_regex(r"(?i)type[0-9٠-٩+ -]{0,7}", fullmatch=True))
@example('TYPE65536')
@example('TYPE')
@example('TYPE-1')
@example('TYPE١')
@example('AA')
@example(' A')
@example('TYPE+1')
def test_type_code_refuses_what_dnspython_refuses(text: str) -> None:
    try:
        expected: int | None = dns.rdatatype.from_text(text)
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            wire.type_code(text)
    else:
        assert wire.type_code(text) == expected


def test_rcode_text_is_dnspythons() -> None:
    assert [wire.rcode_text(code) for code in range(4096)] == [dns.rcode.to_text(code) for code in range(4096)]


def test_inet_ntop_formats_ipv6_like_dnspython() -> None:
    # The codec trusts glibc's inet_ntop to match dns.ipv6.inet_ntoa (RFC 5952 and the IPv4 forms).
    chunks = [0, 1, 0xFFFF, 0x1234]
    for index in range(4 ** 8):
        octets = b"".join(chunks[(index >> (2 * i)) & 3].to_bytes(2, "big") for i in range(8))
        assert socket.inet_ntop(socket.AF_INET6, octets) == dns.ipv6.inet_ntoa(octets)


@given(AAAA_OCTETS)
def test_inet_ntop_formats_random_ipv6_like_dnspython(octets: bytes) -> None:
    assert socket.inet_ntop(socket.AF_INET6, octets) == dns.ipv6.inet_ntoa(octets)


def test_the_common_path_does_not_import_dnspython() -> None:
    # decode() of the common types must not pull dnspython in (its import is the cost the codec avoids).
    import subprocess
    import sys

    # Only what importing the codec and decoding add counts: the package around it is not the codec's business.
    code = ("import sys, kdiag.probes; before = set(sys.modules); from kdiag.probes import wire; "
            "m = wire.decode(bytes.fromhex(sys.argv[1])); assert m.answer; "
            "print(sorted(k for k in set(sys.modules) - before if k == 'dns' or k.startswith('dns.')))")
    out = subprocess.run([sys.executable, "-c", code, typical().hex()], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

