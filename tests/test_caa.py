"""The pure CAA evaluator against Boulder's own cases (va/caa_test.go: TestExtractIssuerDomainAndParameters,
TestValidationMethodMatches, filterCAA/validateCAA behaviour) and RFC 8659/8657."""

from __future__ import annotations

import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdiag.caa import Caa, MalformedValue, Verdict, judge_issue_record, judge_set, methods_allow, parse_issue_value
from kdiag.model import DnsRecord
from kdiag.rules.caa_permits_letsencrypt import _caa_text

LE = "letsencrypt.org"
METHODS = ("http-01", "tls-alpn-01")


@pytest.mark.parametrize(("value", "issuer", "params"), [
    ("", "", ()),
    (";", "", ()),
    (" ; ", "", ()),
    ("letsencrypt.org", LE, ()),
    ("letsencrypt.org;", LE, ()),
    ("  letsencrypt.org\t", LE, ()),
    ("letsencrypt.org; validationmethods=http-01", LE, (("validationmethods", "http-01"),)),
    ("letsencrypt.org;\tvalidationmethods=http-01 ;accounturi=https://a/b", LE,
     (("validationmethods", "http-01"), ("accounturi", "https://a/b"))),
    ("letsencrypt.org; foo=bar=baz", LE, (("foo", "bar=baz"),)),  # split on the first '=' only
    ("letsencrypt.org; AccountURI=x", LE, (("AccountURI", "x"),)),
])
def test_parse_like_boulder(value, issuer, params):
    parsed = parse_issue_value(value)
    assert (parsed.issuer, parsed.params) == (issuer, params)


@pytest.mark.parametrize("value", [
    "letsencrypt.org; invalidValue",  # not tag=value
    "letsencrypt.org; validationmethods=http-01, dns-01",  # space inside a value
    "letsencrypt.org; account-uri=x",  # '-' in a tag
    "letsencrypt.org; a_b=x",  # '_' in a tag
    "letsencrypt.org; tag=vålue",  # non-ASCII value
    "letsencrypt.org;;",  # two empty parameters are not "a trailing semicolon"
])
def test_malformed_like_boulder(value):
    with pytest.raises(MalformedValue):
        parse_issue_value(value)


@pytest.mark.parametrize(("listed", "allowed"), [
    ("http-01", True),
    ("dns-01,http-01", True),
    ("dns-01", False),
    ("tls-alpn-01", True),
    ("howdy !", False),  # an item that breaks the ABNF fails the whole list
    (",", False),
    ("", False),
    ("dns-01,unknown-99,http-01", True),  # unknown names are skipped
    ("HTTP-01", False),  # method names compare exactly
])
def test_validation_methods(listed, allowed):
    assert methods_allow(listed, METHODS) is allowed


def _issue(value: str, flags: int = 0, tag: str = "issue") -> Caa:
    return Caa(flags, tag, value)


@pytest.mark.parametrize(("value", "verdict"), [
    ("letsencrypt.org", Verdict.PERMITS),
    ("LetsEncrypt.org", Verdict.NEAR_MISS),
    ("letsencrypt.org.", Verdict.NEAR_MISS),
    ('"letsencrypt.org"', Verdict.NEAR_MISS),
    ("sectigo.com", Verdict.OTHER_ISSUER),
    ("", Verdict.OTHER_ISSUER),
    ("letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1", Verdict.ACCOUNT_BOUND),
    ("letsencrypt.org; validationmethods=dns-01", Verdict.METHOD_RESTRICTED),
    ("letsencrypt.org; validationmethods=http-01; validationmethods=http-01", Verdict.METHOD_RESTRICTED),
    ("letsencrypt.org; validationmethods=http-01 , dns-01", Verdict.MALFORMED),
    ("sectigo.com; bad param", Verdict.OTHER_ISSUER),  # malformed, but not meant for Let's Encrypt
    ("letsencrypt.org; AccountURI=https://x/1", Verdict.PERMITS),  # ignored parameter: still permits
    ("letsencrypt.org; someunknown=1", Verdict.PERMITS),  # unknown parameters are ignored
])
def test_record_verdicts(value, verdict):
    assert judge_issue_record(_issue(value), LE, METHODS).verdict is verdict


def test_ignored_parameter_is_reported():
    judged = judge_issue_record(_issue("letsencrypt.org; ValidationMethods=dns-01"), LE, METHODS)
    assert judged.verdict is Verdict.PERMITS
    assert judged.ignored_params == ("ValidationMethods",)


def test_set_rules():
    # authorisations are additive: an issue ";" beside letsencrypt.org still permits
    assert judge_set([_issue(";"), _issue(LE)], LE, METHODS).permitted
    # a set with only issuewild / iodef / unknown non-critical tags does not restrict a non-wildcard name
    assert judge_set([_issue("sectigo.com", tag="issuewild"), _issue("mailto:x", tag="iodef"),
                      _issue("x", flags=0x7E, tag="future")], LE, METHODS).permitted
    # upper-case tags are tags all the same
    assert not judge_set([_issue("sectigo.com", tag="ISSUE")], LE, METHODS).permitted
    # flag 128 and flag 1 both make an unknown tag critical; known tags may be critical
    for flags in (128, 1, 129):
        verdict = judge_set([_issue(LE), _issue("x", flags=flags, tag="tbs")], LE, METHODS)
        assert not verdict.permitted and verdict.critical_unknown
    for tag in ("iodef", "issuemail", "issuevmc", "issue"):
        assert judge_set([_issue(LE), _issue("x" if tag != "issue" else LE, flags=128, tag=tag)],
                         LE, METHODS).permitted
    # the empty issuer forbids everything
    assert not judge_set([_issue(";")], LE, METHODS).permitted


@given(st.text(max_size=60))
def test_parser_is_total(value):
    # Any string either parses or raises MalformedValue; nothing else escapes.
    try:
        parsed = parse_issue_value(value)
    except MalformedValue:
        return
    assert parsed.issuer == value.split(";")[0].strip(" \t")


@given(st.lists(st.sampled_from(["http-01", "dns-01", "tls-alpn-01", "bogus-1", "x y", ""]), max_size=4))
def test_methods_allow_matches_the_rfc_reading(items):
    listed = ",".join(items)
    expected = all(i and " " not in i for i in items) and bool(items) and any(i in METHODS for i in items)
    assert methods_allow(listed, METHODS) is expected


# Values a user may have typed (printable ASCII with quotes, backslashes, semicolons, some non-ASCII), and any
# bytes a zone may serve (newlines, ESC, invalid UTF-8) as the rule decodes them.
_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("éß€\t\n\x00\x1b"),
                  max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
_tags = st.from_regex(r"[A-Za-z0-9]{1,15}", fullmatch=True)


@given(flags=st.sampled_from([0, 1, 128, 129]), tag=_tags, value=_values)
def test_generated_caa_records_parse_back_to_the_same_record(flags, tag, value):
    # Given the record kdiag would tell the user to create (e.g. a critical record with its flag cleared)
    record = DnsRecord("example.com", "CAA", _caa_text(flags, tag, value), 3600)
    # When the zone-file line is read back by dnspython
    owner, ttl, rdclass, rdtype, rdata = record.zone_line().split(" ", 4)
    parsed = next(iter(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata)))
    # Then it is the same record: flags, tag and value byte for byte
    assert (parsed.flags, parsed.tag.decode(), parsed.value) == (flags, tag, value.encode("utf-8", "surrogateescape"))
