"""CAA evaluation exactly as Let's Encrypt's Boulder does it (va/caa.go), with RFC 8659 and RFC 8657.

Pure functions over already-fetched records; no I/O. The rule module turns the verdicts into findings.

Boulder's behaviour, mirrored here on purpose even where it differs from a plain reading of the RFCs:
- property tags compare case-insensitively; `iodef`, `issuemail` and `issuevmc` are known (ignored even when
  critical); any other tag with flag bit 128 *or* 1 is a critical unknown and forbids issuance;
- `issuewild` is ignored for non-wildcard names; a set without `issue` records does not restrict issuance;
- the issuer domain is compared exactly (`LetsEncrypt.org` and `letsencrypt.org.` never match);
- parameters: split on `;`, each `tag=value` split on the first `=`; space and tab are trimmed around tags
  and values; a tag may hold only ASCII letters and digits, a value only 0x21-0x3A and 0x3C-0x7E (so no
  interior spaces); a record that breaks this grammar is skipped, it can never authorise;
- parameter tags are case-sensitive: `AccountURI=` is an unknown parameter and silently ignored
  (boulder issue #8614);
- `accounturi` binds the record to one ACME account; a repeated `accounturi` or `validationmethods` makes
  the record unsatisfiable; each `validationmethods` item must match `[[:alnum:]-]+` or the record fails,
  unknown method names are skipped.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdiag.probes import wire

KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail", "issuevmc"})
KNOWN_PARAMS = ("accounturi", "validationmethods")
ACME_METHODS = frozenset({"http-01", "dns-01", "tls-alpn-01", "dns-account-01"})
_METHOD = re.compile(r"^[A-Za-z0-9-]+$")
_WSP = " \t"


@dataclass(frozen=True)
class Caa:
    """One CAA record as served: flags, tag (as written) and value (decoded; invalid UTF-8 replaced)."""

    flags: int
    tag: str
    value: str

    @property
    def critical(self) -> bool:
        # Boulder: "many CAA record users have misinterpreted the RFC and concluded that the bit with
        # significance 1 is the critical bit ... must reasonably be considered an alias".
        return bool(self.flags & (128 | 1))


def from_wire(served: wire.Caa) -> Caa:
    """A served record as `Caa`. surrogateescape keeps bytes that are not UTF-8 recoverable, so a record
    rebuilt from it is the served one byte for byte; Boulder sees such bytes as non-ASCII runes too, which its
    grammar rejects, and no known tag or issuer domain can contain them."""
    return Caa(served.flags, served.tag.decode("ascii", "surrogateescape"),
               served.value.decode("utf-8", "surrogateescape"))


class MalformedValue(ValueError):
    """The issue value breaks Boulder's grammar; Boulder skips such a record."""


@dataclass(frozen=True)
class IssueValue:
    issuer: str
    params: tuple[tuple[str, str], ...]

    def get_all(self, tag: str) -> list[str]:
        return [v for t, v in self.params if t == tag]


def parse_issue_value(value: str) -> IssueValue:
    """Boulder's parseCAARecord: the issuer domain and the parameters, or MalformedValue."""
    parts = value.split(";")
    issuer = parts[0].strip(_WSP)
    rest = parts[1:]
    if len(rest) == 1 and not rest[0].strip(_WSP):
        return IssueValue(issuer, ())  # "letsencrypt.org;" is fine
    params: list[tuple[str, str]] = []
    for parameter in rest:
        if "=" not in parameter:
            raise MalformedValue(f"parameter not formatted as tag=value: {parameter.strip()!r}")
        tag, raw = parameter.split("=", 1)
        tag = tag.strip(_WSP)
        if any(not (c.isascii() and c.isalnum()) for c in tag):
            raise MalformedValue(f"parameter tag contains a disallowed character: {tag!r}")
        val = raw.strip(_WSP)
        if any(not (0x21 <= ord(c) <= 0x7E) or c == ";" for c in val):
            raise MalformedValue(f"parameter value contains a disallowed character (a space?): {val!r}")
        params.append((tag, val))
    return IssueValue(issuer, tuple(params))


class Verdict(enum.StrEnum):
    """Why one issue record does or does not authorise the issuer."""

    PERMITS = "permits"
    OTHER_ISSUER = "other-issuer"
    NEAR_MISS = "near-miss"  # letsencrypt.org spelled with other case, a trailing dot, quotes, spaces
    MALFORMED = "malformed"
    ACCOUNT_BOUND = "account-bound"
    METHOD_RESTRICTED = "method-restricted"


@dataclass(frozen=True)
class RecordVerdict:
    record: Caa
    verdict: Verdict
    detail: str = ""
    ignored_params: tuple[str, ...] = ()  # parameters Boulder ignores only because of their case


def judge_issue_record(record: Caa, issuer: str, methods: Sequence[str]) -> RecordVerdict:
    """Does this issue record authorise `issuer` for one of `methods`? (Boulder's per-record loop.)"""
    try:
        parsed = parse_issue_value(record.value)
    except MalformedValue as exc:
        head = record.value.split(";")[0].strip(_WSP)
        verdict = Verdict.MALFORMED if _fold(head) == issuer else Verdict.OTHER_ISSUER
        return RecordVerdict(record, verdict, str(exc))
    if parsed.issuer != issuer:
        if _fold(parsed.issuer) == issuer:
            return RecordVerdict(record, Verdict.NEAR_MISS, f"names {parsed.issuer!r}, not {issuer!r}")
        return RecordVerdict(record, Verdict.OTHER_ISSUER, parsed.issuer or "no issuer (forbids all)")
    ignored = tuple(t for t, _ in parsed.params if t.lower() in KNOWN_PARAMS and t not in KNOWN_PARAMS)
    accounts = parsed.get_all("accounturi")
    if accounts:
        detail = "accounturi appears twice" if len(accounts) > 1 else f"bound to ACME account {accounts[0]}"
        return RecordVerdict(record, Verdict.ACCOUNT_BOUND, detail, ignored)
    lists = parsed.get_all("validationmethods")
    if len(lists) > 1:
        return RecordVerdict(record, Verdict.METHOD_RESTRICTED, "validationmethods appears twice", ignored)
    if lists and not methods_allow(lists[0], methods):
        return RecordVerdict(record, Verdict.METHOD_RESTRICTED, f"validationmethods={lists[0]}", ignored)
    return RecordVerdict(record, Verdict.PERMITS, "", ignored)


def methods_allow(listed: str, methods: Sequence[str]) -> bool:
    """RFC 8657 as Boulder reads it: any malformed item fails the whole list; unknown names are skipped."""
    items = listed.split(",")
    if any(not _METHOD.match(m) for m in items):
        return False
    return any(m in methods for m in items if m in ACME_METHODS)


def listed_methods(record: Caa) -> list[str]:
    """The well-formed, known methods a record's validationmethods names (for building a fix)."""
    try:
        parsed = parse_issue_value(record.value)
    except MalformedValue:
        return []
    found: list[str] = []
    for listed in parsed.get_all("validationmethods"):
        found += [m for m in listed.split(",") if m in ACME_METHODS and m not in found]
    return found


@dataclass(frozen=True)
class SetVerdict:
    """Boulder's validateCAA over the relevant set, with each record's reason kept for the message."""

    permitted: bool
    critical_unknown: tuple[Caa, ...]
    issue_records: tuple[RecordVerdict, ...]
    permitting: RecordVerdict | None

    @property
    def restricts(self) -> bool:
        return bool(self.issue_records) or bool(self.critical_unknown)


def judge_set(records: Sequence[Caa], issuer: str, methods: Sequence[str]) -> SetVerdict:
    """Evaluate a non-wildcard request against the relevant CAA set (issuewild is ignored)."""
    critical = tuple(r for r in records if r.tag.lower() not in KNOWN_TAGS and r.critical)
    issue = tuple(judge_issue_record(r, issuer, methods) for r in records if r.tag.lower() == "issue")
    permitting = next((v for v in issue if v.verdict is Verdict.PERMITS), None)
    if critical:
        return SetVerdict(False, critical, issue, None)
    if not issue:
        return SetVerdict(True, (), (), None)  # only issuewild/iodef/unknown non-critical: no restriction
    return SetVerdict(permitting is not None, (), issue, permitting)


def _fold(issuer: str) -> str:
    """How a person might have meant an issuer domain: case, quotes, spaces and trailing dots folded."""
    return issuer.strip().strip("\"'").strip().rstrip(".").lower()
