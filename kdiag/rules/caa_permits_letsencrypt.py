"""caa-permits-letsencrypt: the CAA records Let's Encrypt will consult let it issue for the name.

The lookup is Boulder's: CAA for the name and every parent up to and including the TLD, in parallel; the
resolver chases CNAMEs, so the set at the CNAME target counts for the name itself, but the target's parents
never do. The first non-empty set is the relevant one; a lookup error at or below it forbids issuance;
NXDOMAIN below the TLD means empty. Let's Encrypt's error names the *queried* label ("CAA record for
my.example.com prevents issuance") even when the records live at the CNAME target, so every message here
says where the set really is.
"""

from __future__ import annotations

from kdiag.caa import Caa, RecordVerdict, SetVerdict, Verdict, from_wire, judge_set, listed_methods
from kdiag.context import Context
from kdiag.declare import errored, failed, passed, rule, warned
from kdiag.model import DnsRecord, Finding, Remediation
from kdiag.probes.dns import Answer

CAA_TTL = 3600

CODES = {
    "permitted": "The relevant CAA set authorises letsencrypt.org for the assumed validation methods.",
    "no-caa": "No CAA set at the name, its CNAME target or any parent: any CA may issue.",
    "forbids": "The relevant CAA set names other CAs only (or forbids all issuance).",
    "critical-unknown": "A CAA record with an unknown tag is marked critical (flag 128 or 1): issuance forbidden.",
    "issuer-near-miss": "A record means letsencrypt.org but spells it differently (case, trailing dot), "
                        "which never matches.",
    "malformed": "The record naming letsencrypt.org breaks the parameter grammar; Let's Encrypt skips it.",
    "method-restricted": "validationmethods allows none of the methods Konnect's issuance can use.",
    "account-bound": "accounturi binds issuance to an ACME account that is not Konnect's.",
    "lookup-failed": "A CAA lookup at or below the relevant level failed; Let's Encrypt treats that as "
                     "forbidden.",
    "param-case-ignored": "A parameter such as AccountURI= is spelled in another case; Let's Encrypt silently "
                          "ignores it.",
}


def _questions(domain: str) -> list[tuple[str, str]]:
    """CAA at the name and at every parent, asked at once: Boulder's climb stops at the first non-empty set,
    but asking the parents in parallel costs one round trip instead of one per label (and they are shared by
    every name under the same parent)."""
    return [(label, "CAA") for label in _labels(domain)]


@rule("caa-permits-letsencrypt", "CAA records let Let's Encrypt issue a certificate for the name", codes=CODES,
      asks=_questions)
def caa_permits_letsencrypt(ctx: Context) -> Finding:
    issuer = ctx.options.caa_identity
    methods = ctx.options.validation_methods
    labels = _labels(ctx.domain)
    answers = ctx.dns.lookup_many(_questions(ctx.domain))
    trail = [_trail_entry(a) for a in answers]

    relevant: Answer | None = None
    for answer in answers:
        is_tld = answer.name == labels[-1]
        if not answer.answered:
            return errored("lookup-failed", f"kdiag's resolver gave no answer for CAA {answer.name}: "
                           f"{answer.describe()}; cannot tell whether CAA permits issuance", lookups=trail)
        if answer.rcode == "NXDOMAIN" and not is_tld:
            continue  # Boulder: NXDOMAIN below the TLD is an empty answer
        if answer.rcode != "NOERROR":
            return _lookup_failed(ctx, answer, trail)
        if answer.records:
            relevant = answer
            break
    if relevant is None:
        return passed("no-caa", f"no CAA records at {ctx.domain}, its CNAME target or any parent; "
                      "any CA may issue", lookups=trail)

    records = [from_wire(r.caa) for r in relevant.records]
    verdict = judge_set(records, issuer, methods)
    where = _where(relevant, ctx.domain)
    facts = {
        "relevant_label": relevant.name,
        "records_owner": relevant.records[0].name,
        "at_cname_target": bool(relevant.cnames),
        "records": [r.value for r in relevant.records],
        "validation_methods": list(methods),
        "lookups": trail,
    }
    if verdict.permitted:
        return _permitted(relevant, verdict, where, issuer, facts)
    return _denied(ctx, relevant, verdict, where, issuer, facts)


def _permitted(relevant: Answer, verdict: SetVerdict, where: str, issuer: str, facts: dict[str, object]) -> Finding:
    if not verdict.issue_records:
        return passed("permitted", f"CAA {where} has no issue records ({_summary(relevant)}), so it does not "
                      "restrict issuance", **facts)
    ok = verdict.permitting
    assert ok is not None
    if ok.ignored_params:
        params = ", ".join(ok.ignored_params)
        fixed = _rewrite_params_lowercase(ok.record.value)
        owner = relevant.records[0].name
        return warned(
            "param-case-ignored",
            f"CAA {where} permits {issuer}, but Let's Encrypt ignores {params} in {ok.record.value!r}: "
            "parameter names are case-sensitive, so that restriction is not enforced",
            Remediation(
                summary=f"Write the parameter names in lower case ({', '.join(p.lower() for p in ok.ignored_params)}) "
                        "if you want the restriction enforced",
                records=(DnsRecord(owner, "CAA", _caa_text(ok.record.flags, "issue", fixed), CAA_TTL),),
                delete=(_delete_line(relevant, ok.record),),
            ),
            **facts,
        )
    return passed("permitted", f"CAA {where} permits {issuer}: {ok.record.value!r}", **facts)


def _denied(ctx: Context, relevant: Answer, verdict: SetVerdict, where: str, issuer: str,
            facts: dict[str, object]) -> Finding:
    owner = relevant.records[0].name
    le_says = f"Let's Encrypt reports this as \"CAA record for {relevant.name} prevents issuance\""
    plain = DnsRecord(owner, "CAA", f'0 issue "{issuer}"', CAA_TTL)

    if relevant.cnames:
        # The set lives at the CNAME target: the customer cannot put CAA beside a CNAME.
        code, reason = _denial_reason(verdict, issuer, ctx.options.validation_methods)
        return failed(
            code,
            f"CAA at {owner}, the CNAME target of {relevant.name}, {reason}; {le_says}",
            Remediation(
                summary=f"The gateway's hostname {owner} publishes this CAA set and you cannot override it "
                        f"(a CNAME name cannot also hold CAA): ask Kong support to publish "
                        f"'{owner}. CAA 0 issue \"{issuer}\"' or remove its CAA records",
            ),
            **facts,
        )
    if verdict.critical_unknown:
        bad = verdict.critical_unknown
        return failed(
            "critical-unknown",
            f"CAA {where} has {len(bad)} critical record(s) with a tag Let's Encrypt does not know "
            f"({', '.join(_rr_text(r) for r in bad)}); a critical unknown tag forbids issuance",
            Remediation(
                summary="Clear the critical flag on these records (or delete them); keep the others",
                records=tuple(DnsRecord(owner, "CAA", _caa_text(0, r.tag, r.value), CAA_TTL) for r in bad),
                delete=tuple(_delete_line(relevant, r) for r in bad),
            ),
            **facts,
        )
    code, reason = _denial_reason(verdict, issuer, ctx.options.validation_methods)
    by = {v.verdict: [x for x in verdict.issue_records if x.verdict is v.verdict] for v in verdict.issue_records}
    if code == "account-bound":
        return failed(code, f"CAA {where} {reason}; {le_says}", Remediation(
            summary=f"Konnect's ACME account cannot be known, so add an unbound issue record for {issuer} "
                    "beside the existing ones (authorisations are additive; your account-bound record stays)",
            records=(plain,)), **facts)
    if code == "method-restricted":
        wanted = _merge_methods(by[Verdict.METHOD_RESTRICTED], ctx.options.validation_methods)
        value = f'0 issue "{issuer}; validationmethods={",".join(wanted)}"'
        return failed(code, f"CAA {where} {reason}; {le_says}", Remediation(
            summary=f"Allow {' or '.join(ctx.options.validation_methods)} in the validationmethods of the "
                    f"{issuer} record (Konnect cannot use DNS-01 through a CNAME)",
            records=(DnsRecord(owner, "CAA", value, CAA_TTL),),
            delete=tuple(_delete_line(relevant, v.record) for v in by[Verdict.METHOD_RESTRICTED])), **facts)
    if code in ("malformed", "issuer-near-miss"):
        kind = Verdict.MALFORMED if code == "malformed" else Verdict.NEAR_MISS
        return failed(code, f"CAA {where} {reason}; {le_says}", Remediation(
            summary=f"Replace the record with one Let's Encrypt reads as {issuer}",
            records=(plain,),
            delete=tuple(_delete_line(relevant, v.record) for v in by[kind])), **facts)
    return failed("forbids", f"CAA {where} {reason}; {le_says}", Remediation(
        summary=f"Add an issue record for {issuer} beside the existing ones at {owner} (CAA authorisations are "
                "additive; keep your other CAs)",
        records=(plain,)), **facts)


def _denial_reason(verdict: SetVerdict, issuer: str, methods: tuple[str, ...]) -> tuple[str, str]:
    """The most specific code for a denial, and a phrase naming what was observed."""
    if verdict.critical_unknown:
        tags = ", ".join(sorted({r.tag for r in verdict.critical_unknown}))
        return "critical-unknown", f"has a critical record with unknown tag {tags}, which forbids issuance"
    for kind, code in ((Verdict.ACCOUNT_BOUND, "account-bound"), (Verdict.METHOD_RESTRICTED, "method-restricted"),
                       (Verdict.MALFORMED, "malformed"), (Verdict.NEAR_MISS, "issuer-near-miss")):
        hits = [v for v in verdict.issue_records if v.verdict is kind]
        if hits:
            return code, _reason_phrase(kind, hits, issuer, methods)
    issuers = sorted({v.detail for v in verdict.issue_records})
    return "forbids", f"permits only {', '.join(issuers)}, not {issuer}"


def _reason_phrase(kind: Verdict, hits: list[RecordVerdict], issuer: str, methods: tuple[str, ...]) -> str:
    first = hits[0]
    text = f"{first.record.value!r}"
    if kind is Verdict.ACCOUNT_BOUND:
        return f"allows {issuer} only for one ACME account ({text}: {first.detail}), which is not Konnect's"
    if kind is Verdict.METHOD_RESTRICTED:
        return (f"allows {issuer} only with {first.detail}, which permits none of {', '.join(methods)} "
                f"(the methods Konnect can use through a CNAME)")
    if kind is Verdict.MALFORMED:
        return f"has a malformed {issuer} record that Let's Encrypt skips ({text}: {first.detail})"
    return f"spells the issuer as {text}, which Let's Encrypt never matches to {issuer}"


def _lookup_failed(ctx: Context, answer: Answer, trail: list[dict[str, object]]) -> Finding:
    is_tld = answer.name == _labels(ctx.domain)[-1]
    what = f"CAA lookup for {answer.name} failed: {answer.describe()}"
    if answer.rcode == "NXDOMAIN" and is_tld:
        what = f"the top-level domain {answer.name} does not exist (NXDOMAIN for CAA)"
    return failed(
        "lookup-failed",
        f"{what}; Let's Encrypt treats a failed CAA lookup as forbidding issuance",
        Remediation(
            summary=f"Make the name servers for {answer.name} answer CAA queries with NOERROR (an empty answer "
                    "is fine); a SERVFAIL, REFUSED, NOTIMP or timeout blocks issuance. Check DNSSEC and "
                    "firewalls that drop unknown query types",
            commands=(("dig", "+dnssec", answer.name, "CAA"), ("kdiag", "domain", ctx.domain, "--only",
                                                              "caa-permits-letsencrypt")),
        ),
        failed_label=answer.name, rcode=answer.rcode, ede=list(answer.ede), lookups=trail,
    )


def _labels(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def _where(answer: Answer, domain: str) -> str:
    owner = answer.records[0].name
    if answer.cnames:
        return f"at {owner} (the CNAME target of {answer.name})"
    if answer.name != domain:
        return f"at {owner} (a parent of {domain})"
    return f"at {owner}"


def _caa_text(flags: int, tag: str, value: str) -> str:
    """CAA presentation text; bytes outside printable ASCII as \\DDD (RFC 1035 §5.1), so control bytes and
    newlines in a served value survive into a zone-file line."""
    out = []
    for byte in value.encode("utf-8", "surrogateescape"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return f'{flags} {tag} "{"".join(out)}"'


def _rr_text(record: Caa) -> str:
    return _caa_text(record.flags, record.tag, record.value)


def _delete_line(answer: Answer, record: Caa) -> DnsRecord:
    served = next((r for r in answer.records if from_wire(r.caa) == record), answer.records[0])
    return DnsRecord(served.name, "CAA", served.value, served.ttl)


def _summary(answer: Answer) -> str:
    return "; ".join(r.value for r in answer.records)


def _merge_methods(hits: list[RecordVerdict], assumed: tuple[str, ...]) -> list[str]:
    methods: list[str] = []
    for v in hits:
        methods += [m for m in listed_methods(v.record) if m not in methods]
    return methods + [m for m in assumed if m not in methods]


def _rewrite_params_lowercase(value: str) -> str:
    parts = value.split(";")
    fixed = [parts[0].strip()]
    for p in parts[1:]:
        tag, _, val = p.partition("=")
        tag = tag.strip()
        fixed.append(f"{tag.lower() if tag.lower() in ('accounturi', 'validationmethods') else tag}={val.strip()}")
    return "; ".join(fixed)


def _trail_entry(answer: Answer) -> dict[str, object]:
    return {"label": answer.name, "rcode": answer.rcode, "records": [r.value for r in answer.records],
            "cname_target": answer.canonical_name if answer.cnames else None}
