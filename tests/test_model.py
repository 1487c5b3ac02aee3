"""The data kdiag hands to people: records to paste into a zone, commands to paste into a shell, findings.

The promise tested here: every record kdiag suggests loads back with dnspython as exactly that record, and every
command kdiag prints is one argv however hostile the names in it.
"""

from __future__ import annotations

import shlex
import subprocess

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dns.rdtypes.ANY.CAA import CAA
from hypothesis import given
from hypothesis import strategies as st

from kdiag.model import CheckResult, DnsRecord, Finding, Remediation, Status

IN = dns.rdataclass.IN

# --- strategies ----------------------------------------------------------------------------------------------

LDH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).map(
    lambda s: s.strip("-") or "x")
# Any octets at all: dnspython must escape whatever kdiag echoes back from a zone it was served.
RAW_LABEL = st.binary(min_size=1, max_size=63)
LABELS = st.lists(st.one_of(LDH.map(str.encode), RAW_LABEL), min_size=1, max_size=5)


def _name(labels: list[bytes]) -> dns.name.Name | None:
    try:
        return dns.name.Name([*labels, b""])
    except dns.name.NameTooLong:
        return None


NAMES = LABELS.map(_name).filter(lambda n: n is not None)


def names() -> st.SearchStrategy[dns.name.Name]:
    return NAMES


TTLS = st.integers(min_value=0, max_value=2**31 - 1)
ISSUERS = st.one_of(st.just("letsencrypt.org"), st.just(""), LDH.map(lambda s: s + ".example"))
METHODS = st.lists(st.sampled_from(["http-01", "tls-alpn-01", "dns-01", "Http-01"]), min_size=1, max_size=3)
HOSTILE = st.text(alphabet=st.sampled_from('ab;=" \\\'$()`{}\t,é'), max_size=30)


@st.composite
def caa_values(draw) -> bytes:
    tag = draw(st.sampled_from(["issue", "issuewild", "iodef"]))
    if tag == "iodef":
        text = draw(st.one_of(st.just("mailto:security@example.com"), HOSTILE.map(lambda s: "https://x/" + s)))
    else:
        text = draw(ISSUERS)
        if draw(st.booleans()):
            text += "; validationmethods=" + ",".join(draw(METHODS))
        if draw(st.booleans()):
            text += "; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/" + draw(HOSTILE)
        text += draw(st.one_of(st.just(""), HOSTILE))
    return text.encode()


def parse_back(line: str) -> tuple[dns.name.Name, dns.rdataset.Rdataset]:
    """Load one zone-file line the way a DNS provider's import would, and return its only RRset."""
    zone = dns.zone.from_text(line + "\n", origin=dns.name.root, relativize=False, check_origin=False)
    (loaded,) = list(zone.iterate_rdatasets())
    return loaded


def assert_round_trip(record: DnsRecord, owner: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
    line = record.zone_line()
    assert "\n" not in line
    name, rdataset = parse_back(line)
    assert name == owner
    assert (rdataset.ttl, rdataset.rdclass, rdataset.rdtype) == (ttl, IN, rdata.rdtype)
    assert list(rdataset) == [rdata]
    # And the fields as kdiag's JSON gives them parse to the same RRset.
    rrset = dns.rrset.from_text(record.name, record.ttl, "IN", record.type, record.value)
    assert rrset.name == owner and list(rrset) == [rdata]


# --- DnsRecord ------------------------------------------------------------------------------------------------

RDATA = st.one_of(
    names().map(lambda n: ("CNAME", n.to_text())),
    st.ip_addresses(v=4).map(lambda a: ("A", str(a))),
    st.ip_addresses(v=6).map(lambda a: ("AAAA", str(a))),
)


@given(owner=names(), rdata=RDATA, ttl=TTLS)
def test_every_cname_a_and_aaaa_record_parses_back_to_itself(owner, rdata, ttl):
    rdtype, value = rdata
    record = DnsRecord(owner.to_text(), rdtype, value, ttl)
    assert_round_trip(record, owner, ttl, dns.rdata.from_text(IN, rdtype, value))


@given(owner=names(), flags=st.sampled_from([0, 128]), tag=st.sampled_from(["issue", "issuewild", "iodef"]),
       value=caa_values(), ttl=TTLS)
def test_every_caa_record_parses_back_to_itself(owner, flags, tag, value, ttl):
    # Given the record as it should end up in the zone
    wanted = CAA(IN, dns.rdatatype.CAA, flags, tag.encode(), value)
    # When kdiag renders it from its presentation form
    record = DnsRecord(owner.to_text(), "CAA", wanted.to_text(), ttl)
    # Then a zone loader reads back exactly that record
    assert_round_trip(record, owner, ttl, wanted)


@given(flags=st.sampled_from([0, 128]), tag=st.sampled_from(["issue", "issuewild", "iodef"]),
       value=caa_values().map(bytes.decode))
def test_a_caa_value_written_with_quote_and_backslash_escapes_parses_back(flags, tag, value):
    # The way a rule writes a CAA value it composed: escape backslash and double quote, then quote it.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    record = DnsRecord("my.example.com", "CAA", f'{flags} {tag} "{escaped}"')
    wanted = CAA(IN, dns.rdatatype.CAA, flags, tag.encode(), value.encode())
    assert_round_trip(record, dns.name.from_text("my.example.com"), 300, wanted)


def test_a_record_is_stored_in_canonical_form():
    record = DnsRecord("my.example.com", "cname", "9e454bcfec.kongcloud.dev", 60)
    assert (record.name, record.type, record.value) == ("my.example.com.", "CNAME", "9e454bcfec.kongcloud.dev.")
    assert record.zone_line() == "my.example.com. 60 IN CNAME 9e454bcfec.kongcloud.dev."
    caa = DnsRecord("example.com.", "CAA", '0 issue "letsencrypt.org; validationmethods=http-01"')
    assert caa.zone_line() == 'example.com. 300 IN CAA 0 issue "letsencrypt.org; validationmethods=http-01"'


@pytest.mark.parametrize(("name", "rdtype", "value", "ttl"), [
    ("my..example.com", "CNAME", "gw.kongcloud.dev", 300),  # empty label
    ("a" * 64 + ".example.com", "A", "192.0.2.1", 300),  # label too long
    ("my.example.com", "A", "192.0.2.256", 300),
    ("my.example.com", "AAAA", "192.0.2.1", 300),
    ("my.example.com", "NOPE", "x", 300),
    ("my.example.com", "CAA", '0 issue "unterminated', 300),
    ("my.example.com", "CAA", '0 is-sue "letsencrypt.org"', 300),  # tags are alphanumeric
    ("my.example.com", "CNAME", "a b.example.com", 300),  # two names where one goes
    ("my.example.com", "A", "192.0.2.1", -1),
    ("my.example.com", "A", "192.0.2.1", 2**32),
    ("my.example.com", "A", "192.0.2.1", "300"),
    ("my.example.com", "A", "192.0.2.1", 1.5),
])
def test_a_record_that_would_not_load_cannot_be_built(name, rdtype, value, ttl):
    with pytest.raises((dns.exception.DNSException, ValueError)):
        DnsRecord(name, rdtype, value, ttl)


# --- Remediation commands -------------------------------------------------------------------------------------

HOSTILE_ARGS = ["$(rm -rf /)", "`rm -rf /`", "a; rm -rf /", "it's", 'say "hi"', "two words", "", "*", "~",
                "back\\slash", "new\nline", "tab\there", "--flag=$HOME", "&& echo", "|", ">out", "é.example"]


def test_command_lines_quote_hostile_arguments():
    rem = Remediation("Run it", commands=(("kdiag", "domain", *HOSTILE_ARGS),))
    (line,) = rem.command_lines()
    assert shlex.split(line) == ["kdiag", "domain", *HOSTILE_ARGS]


@given(st.lists(st.lists(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=20),
                         min_size=1, max_size=5), max_size=3))
def test_command_lines_always_split_back_to_their_argv(commands):
    rem = Remediation("Run it", commands=tuple(tuple(argv) for argv in commands))
    assert [shlex.split(line) for line in rem.command_lines()] == commands


def test_a_pasted_command_line_runs_as_exactly_its_argv_in_a_real_shell(tmp_path):
    canary = tmp_path / "pwned"
    hostile = [f"$(touch {canary})", f"`touch {canary}`", f"; touch {canary}", f"&& touch {canary}",
               f"| touch {canary}", "it's", 'a "b" c', "*", "$HOME", "x\ny"]
    rem = Remediation("Run it", commands=(("printf", "%s\\0", *hostile),))
    (line,) = rem.command_lines()
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True, cwd=tmp_path, timeout=10).stdout
    assert out.decode().split("\0")[:-1] == hostile
    assert not canary.exists()


def test_remediation_as_dict_has_exactly_the_contract_fields():
    rem = Remediation("Point it at the gateway",
                      records=(DnsRecord("my.example.com", "CNAME", "gw.kongcloud.dev"),),
                      delete=(DnsRecord("my.example.com", "A", "192.0.2.1", 60),),
                      commands=(("dig", "+short", "my.example.com"),))
    assert rem.as_dict() == {
        "summary": "Point it at the gateway",
        "records": ["my.example.com. 300 IN CNAME gw.kongcloud.dev."],
        "delete": ["my.example.com. 60 IN A 192.0.2.1"],
        "commands": ["dig +short my.example.com"],
    }


# --- Finding and status ---------------------------------------------------------------------------------------

def test_a_fail_finding_refuses_to_exist_without_a_remediation():
    with pytest.raises(ValueError, match="needs a remediation"):
        Finding(Status.FAIL, "wrong-target", "points elsewhere")


def test_a_fail_given_as_a_string_is_still_held_to_the_remediation_promise():
    with pytest.raises(ValueError, match="needs a remediation"):
        Finding("fail", "wrong-target", "points elsewhere")  # type: ignore[arg-type]
    assert Finding("warn", "meh", "odd").status is Status.WARN  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Finding("fine", "ok", "no such status")  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [Status.PASS, Status.WARN, Status.SKIP, Status.ERROR])
def test_other_findings_may_omit_the_remediation(status):
    assert Finding(status, "x", "m").remediation is None


def test_a_check_result_reports_its_findings_status():
    result = CheckResult("t-id", "Title", Finding(Status.WARN, "meh", "odd"), 3)
    assert result.status is Status.WARN


def test_status_values_are_the_contract_words():
    assert sorted(s.value for s in Status) == ["error", "fail", "pass", "skip", "warn"]
