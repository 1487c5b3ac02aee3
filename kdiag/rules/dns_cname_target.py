"""dns-cname-target: the name is a CNAME, directly or through a short chain, to the Konnect gateway hostname.

Konnect validates a serverless custom domain by its CNAME, and Let's Encrypt reaches the gateway through it.
The rule asks the resolver for A and AAAA at the name at once; the A answer carries the chain the resolver
chased. A name without a CNAME is then asked for its SOA (is it a zone apex?); only when the A lookup fails
does the rule walk the chain hop by hop, to tell a loop from a broken name server. Each way of getting this
wrong has its own code and its own exact fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdiag.context import Context
from kdiag.declare import errored, failed, passed, rule, warned
from kdiag.model import DnsRecord, Finding, Remediation
from kdiag.probes.dns import Answer, Record

MAX_HOPS = 8
CNAME_TTL = 300
# A label nobody creates: if it answers like the name does, the name's answer comes from a wildcard.
WILDCARD_PROBE = "_kdiag-wildcard-probe"

CODES = {
    "ok": "The CNAME chain reaches the expected gateway hostname, which resolves.",
    "missing": "No CNAME (and no address) at the name; possibly created at a doubled owner name.",
    "wrong-target": "The CNAME points somewhere other than the gateway hostname.",
    "relative-target": "The CNAME target had the zone's origin appended (a missing trailing dot).",
    "dangling": "The CNAME target does not resolve.",
    "loop": "The CNAME chain loops, or is longer than 8 hops.",
    "apex": "The name is a zone apex, where a CNAME is impossible.",
    "flattened": "A/AAAA equal to the gateway's addresses but no CNAME (ALIAS or CNAME flattening).",
    "stale-address": "A/AAAA records that are not the gateway's, and no CNAME.",
    "wildcard-mask": "Only a wildcard answers for the name, and not with the gateway hostname.",
    "lookup-failed": "The resolver returned SERVFAIL or REFUSED for the name (Let's Encrypt fails the same "
                     "way); as status error: kdiag's own resolver did not answer.",
}


@dataclass(frozen=True)
class _Expect:
    target: str | None
    suffix: str

    def matches(self, name: str) -> bool:
        if self.target is not None:
            return name == self.target
        return name.endswith("." + self.suffix)

    @property
    def describe(self) -> str:
        return self.target or f"a host under {self.suffix}"


def _questions(domain: str) -> list[tuple[str, str]]:
    """One round trip for the common case: the A answer carries the chain the resolver chased (a CNAME query
    would tell nothing more), and only a name without a CNAME needs the SOA query of the apex check."""
    return [(domain, "A"), (domain, "AAAA")]


@rule("dns-cname-target", "The name is a CNAME to the Konnect gateway hostname", codes=CODES, asks=_questions)
def dns_cname_target(ctx: Context) -> Finding:
    name = ctx.domain
    expect = _Expect(ctx.options.target, ctx.options.gateway_suffix)
    a, aaaa = ctx.dns.lookup_many(_questions(name))
    if not a.answered:
        return errored("lookup-failed", f"kdiag's resolver gave no answer for A {name}: {a.describe()}; "
                       f"cannot tell how {name} resolves", server=a.server)
    facts: dict[str, object] = {"expected_target": ctx.options.target, "expected_suffix": expect.suffix}
    if not a.ok:
        return _failed_lookup(ctx, a, expect, facts)
    if a.cnames:
        return _judge_chain(ctx, list(a.cnames), a, aaaa, expect, facts)

    soa = ctx.dns.lookup(name, "SOA")
    if soa.rcode == "NOERROR" and soa.records and not soa.cnames and soa.records[0].name == name:
        return _apex(ctx, expect, facts)
    addresses = [*a.records, *(aaaa.records if aaaa.ok else ())]
    if not addresses:
        return _missing(ctx, a, expect, facts)
    return _addresses_without_cname(ctx, addresses, expect, facts)


def _judge_chain(ctx: Context, chain: list[Record], a: Answer, aaaa: Answer, expect: _Expect,
                 facts: dict[str, object]) -> Finding:
    name = ctx.domain
    targets = [hop.target for hop in chain]
    first = chain[0]
    final_addrs = [r.value for r in (*a.records, *aaaa.records)]
    facts.update(chain=[f"{h.name} -> {h.target}" for h in chain], addresses=final_addrs)
    shown = " -> ".join([name, *targets])
    if len(chain) > MAX_HOPS:
        return _loop(ctx, chain, expect, facts, f"the CNAME chain is longer than {MAX_HOPS} hops: {shown}")
    if any(expect.matches(t) for t in targets):
        if not final_addrs:
            return failed("dangling", f"{shown}, but {targets[-1]} does not resolve to any address ({a.rcode})",
                          Remediation(
                              summary=f"{targets[-1]} has no address: re-copy the CNAME value from Konnect → "
                                      "Custom Domains and check that the serverless data plane exists",
                              commands=(("kdiag", "konnect", "domain", "list"),)),
                          **facts)
        return passed("ok", f"{shown} ({', '.join(final_addrs)})", **facts)
    wanted = _cname(name, expect)
    fix_delete = (DnsRecord(first.name, "CNAME", first.value, first.ttl),) if first.name == name else ()
    relative = _relative_hop(targets, expect, ctx)
    if relative is not None:
        hop, intended = relative
        return failed("relative-target",
                      f"{name} is a CNAME to {hop}: the zone appended its own name to {intended}; "
                      "add the trailing dot",
                      Remediation(summary=f"Write the target with a trailing dot ({intended}.) so the zone does "
                                          "not append its origin",
                                  records=(_cname_to(name, intended),),
                                  delete=fix_delete),
                      **facts)
    if _from_wildcard(ctx, name, lambda probe: bool(probe.cnames) and probe.cnames[0].target == targets[0]):
        return _wildcard_mask(name, f"a wildcard CNAME to {targets[0]}", wanted, expect, facts)
    if not final_addrs and expect.target is None and targets[-1].endswith("." + expect.suffix):
        return failed("dangling", f"{shown}, but {targets[-1]} does not resolve ({a.rcode})",
                      Remediation(summary=f"{targets[-1]} does not exist: copy the CNAME value exactly as Konnect "
                                          "shows it (kdiag konnect domain list), then point the record at it",
                                  delete=fix_delete,
                                  commands=(("kdiag", "konnect", "domain", "list"),)),
                      **facts)
    unresolved = "" if final_addrs else f" (which does not resolve: {a.rcode})"
    return failed("wrong-target", f"{shown}{unresolved}, not {expect.describe}",
                  _replace_with_cname(name, wanted, fix_delete, expect), **facts)


def _addresses_without_cname(ctx: Context, addresses: list[Record], expect: _Expect,
                             facts: dict[str, object]) -> Finding:
    name = ctx.domain
    observed = sorted({r.value for r in addresses})
    facts["addresses"] = observed
    wanted = _cname(name, expect)
    delete = tuple(DnsRecord(r.name, r.type, r.value, r.ttl) for r in addresses)
    gateway: list[str] = []
    if expect.target is not None:
        ta, taaaa = ctx.dns.lookup_many([(expect.target, "A"), (expect.target, "AAAA")])
        gateway = sorted({r.value for r in (*ta.records, *taaaa.records)})
        facts["target_addresses"] = gateway
        if gateway and observed == gateway:
            return warned("flattened",
                          f"{name} has the gateway's addresses ({', '.join(observed)}) but no CNAME: ALIAS or CNAME "
                          "flattening; Konnect validates the CNAME, and the gateway's addresses can change",
                          _replace_with_cname(name, wanted, delete, expect), **facts)
    if _from_wildcard(ctx, name, lambda probe: sorted(r.value for r in probe.records) == observed
                      and bool(probe.records)):
        return _wildcard_mask(name, f"wildcard addresses {', '.join(observed)}", wanted, expect, facts)
    stale = [a for a in observed if a not in gateway]
    detail = (f"{', '.join(stale)} {'is' if len(stale) == 1 else 'are'} not the gateway's "
              f"({', '.join(gateway) or expect.describe + ' has no address'})" if expect.target
              else "pass --target to compare them with the gateway's; Konnect needs a CNAME either way")
    return failed("stale-address", f"{name} has A/AAAA records ({', '.join(observed)}) and no CNAME: {detail}",
                  _replace_with_cname(name, wanted, delete, expect,
                                      extra="Let's Encrypt prefers IPv6 and does not fall back to IPv4 on HTTP "
                                            "errors, so a stale AAAA alone breaks issuance"),
                  **facts)


def _missing(ctx: Context, a: Answer, expect: _Expect, facts: dict[str, object]) -> Finding:
    name = ctx.domain
    wanted = _cname(name, expect)
    zone = a.soa.name if a.soa is not None else None
    facts.update(rcode=a.rcode, zone=zone)
    doubled = [f"{name}.{zone}"] if zone and zone != "." else []
    doubled.append(f"{name}.{name}")
    answers = ctx.dns.lookup_many((d, "CNAME") for d in doubled)
    for owner, answer in zip(doubled, answers, strict=True):
        if answer.records:
            hop = answer.records[0]
            facts["doubled_owner"] = owner
            # Without --target, the doubled record's own target is the best guess when it is a gateway name.
            intended = _Expect(hop.target, expect.suffix) if expect.target is None and \
                expect.matches(hop.target) else expect
            fix = _cname(name, intended)
            return failed(
                "missing",
                f"no record at {name}, but {owner} is a CNAME to {hop.target}: the DNS provider's form appended "
                f"the zone name to the host",
                Remediation(summary=f"In the provider's host field enter only the part before the zone "
                                    f"(e.g. '{name.split('.')[0]}') or the full name with a trailing dot; "
                                    f"delete the record at {owner}",
                            records=(fix,) if fix else (),
                            delete=(DnsRecord(hop.name, "CNAME", hop.value, hop.ttl),)),
                **facts)
    what = "does not exist (NXDOMAIN)" if a.rcode == "NXDOMAIN" else "has no CNAME, A or AAAA record"
    return failed("missing", f"{name} {what}",
                  Remediation(summary=f"Create the CNAME record for {name}" + _no_target_hint(expect),
                              records=(wanted,) if wanted else ()), **facts)


def _apex(ctx: Context, expect: _Expect, facts: dict[str, object]) -> Finding:
    name = ctx.domain
    suggestion = f"www.{name}"
    wanted = _cname(suggestion, expect)
    return failed("apex", f"{name} is a zone apex (it holds the zone's SOA), where a CNAME is impossible",
                  Remediation(summary=f"Use a subdomain such as {suggestion} for the custom domain; an apex "
                                      "cannot be a CNAME (RFC 1034 §3.6.2), and ALIAS/flattening does not "
                                      "satisfy Konnect's CNAME validation" + _no_target_hint(expect),
                              records=(wanted,) if wanted else ()),
                  **facts)


def _failed_lookup(ctx: Context, a: Answer, expect: _Expect, facts: dict[str, object]) -> Finding:
    """A for the name came back SERVFAIL/REFUSED: walk the chain to tell a loop from a broken server."""
    name = ctx.domain
    hops, stop = _walk(ctx, name)
    facts.update(rcode=a.rcode, ede=list(a.ede), chain=[f"{h.name} -> {h.target}" for h in hops])
    if stop == "loop":
        shown = " -> ".join([name, *(h.target for h in hops)])
        return _loop(ctx, hops, expect, facts, f"the CNAME chain loops: {shown}")
    where = hops[-1].target if hops else name
    suffix = f" (at {where}, reached through the CNAME chain)" if hops else ""
    return failed("lookup-failed",
                  f"the resolver answered {a.describe()} for {name}{suffix}; Let's Encrypt will fail the same way "
                  "(\"DNS problem: SERVFAIL looking up A\")",
                  Remediation(summary=f"Fix the name servers serving {where}: they must answer (check the "
                                      "delegation at the registrar, DNSSEC, and that every listed server is up)",
                              commands=(("dig", "+trace", where, "A"),)),
                  **facts)


def _walk(ctx: Context, name: str) -> tuple[list[Record], str]:
    """Follow CNAMEs one query at a time: ('loop' | 'end' | 'failed' | 'long')."""
    hops: list[Record] = []
    seen = {name}
    current = name
    for _ in range(MAX_HOPS + 1):
        answer = ctx.dns.lookup(current, "CNAME")
        if not answer.ok:
            return hops, "failed"
        if not answer.records:
            return hops, "end"
        hop = answer.records[0]
        hops.append(hop)
        if hop.target in seen:
            return hops, "loop"
        seen.add(hop.target)
        current = hop.target
    return hops, "long"


def _loop(ctx: Context, hops: list[Record], expect: _Expect, facts: dict[str, object], message: str) -> Finding:
    name = ctx.domain
    wanted = _cname(name, expect)
    first = hops[0]
    return failed("loop", message,
                  Remediation(summary=f"Point {name} straight at the gateway hostname, breaking the loop",
                              records=(wanted,) if wanted else (),
                              delete=(DnsRecord(first.name, "CNAME", first.value, first.ttl),)
                              if first.name == name else ()),
                  **facts)


def _wildcard_mask(name: str, what: str, wanted: DnsRecord | None, expect: _Expect,
                   facts: dict[str, object]) -> Finding:
    facts["wildcard"] = True
    return failed("wildcard-mask",
                  f"{name} has no record of its own; only {what} answers for it, not {expect.describe}",
                  Remediation(summary=f"Create an explicit CNAME for {name} (it takes precedence over the "
                                      "wildcard)" + _no_target_hint(expect),
                              records=(wanted,) if wanted else ()),
                  **facts)


def _from_wildcard(ctx: Context, name: str, same: Callable[[Answer], bool]) -> bool:
    """Does a label nobody created, beside the name, answer the same way? Then a wildcard answers for it."""
    parent = name.split(".", 1)[1]
    probe = ctx.dns.lookup(f"{WILDCARD_PROBE}.{parent}", "A")
    return probe.rcode == "NOERROR" and same(probe)


def _relative_hop(targets: list[str], expect: _Expect, ctx: Context) -> tuple[str, str] | None:
    """A hop like `abc.kongcloud.dev.example.com`: the intended target with the zone's origin appended."""
    for hop in targets:
        if expect.target is not None and hop.startswith(expect.target + "."):
            return hop, expect.target
        if expect.target is None:
            marker = "." + expect.suffix + "."
            if marker in hop:
                return hop, hop[: hop.index(marker) + len(marker) - 1]
    return None


def _cname(owner: str, expect: _Expect) -> DnsRecord | None:
    return _cname_to(owner, expect.target) if expect.target else None


def _cname_to(owner: str, target: str) -> DnsRecord:
    return DnsRecord(owner, "CNAME", target + ".", CNAME_TTL)


def _replace_with_cname(name: str, wanted: DnsRecord | None, delete: tuple[DnsRecord, ...], expect: _Expect,
                        extra: str = "") -> Remediation:
    summary = f"Replace the records at {name} with one CNAME to {expect.describe}"
    if extra:
        summary += f". {extra}"
    return Remediation(summary=summary + _no_target_hint(expect), records=(wanted,) if wanted else (),
                       delete=delete)


def _no_target_hint(expect: _Expect) -> str:
    if expect.target is not None:
        return ""
    return (" (the CNAME value is shown in Konnect → Custom Domains; rerun with --target VALUE to get the "
            "exact record)")
