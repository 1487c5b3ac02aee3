"""konnect-domain-status: Konnect has the custom domain, and it is ready.

Konnect validates a serverless custom domain once, when it is added, and never again: a domain added before its
CNAME (or CAA) was right stays in `error`, or unverified, after the DNS is fixed. So this rule reads Konnect's
view (the custom domain by name, its state and its `/online-status`) and, when Konnect reports a failure,
re-checks the DNS itself through the shared cached resolver (`ctx.dns`): the CNAME chain reaches the gateway
hostname, that hostname resolves, and CAA lets Let's Encrypt issue. DNS right now plus a failure in Konnect is
`stale-validation`, fixed only by removing and re-adding the domain.

The gateway hostname is `--target` when given; otherwise it is derived from the control plane Konnect names
(see kdiag.konnect.gateway), and the facts say so: no public API field carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdiag.caa import from_wire, judge_set
from kdiag.context import Context
from kdiag.declare import errored, failed, passed, rule, skipped, warned
from kdiag.konnect.errors import (
    KonnectAuthError,
    KonnectError,
    KonnectTokenError,
)
from kdiag.konnect.gateway import SERVERLESS_V0, SERVERLESS_V1, ago, derive_target, parse_time
from kdiag.konnect.regions import REGIONS
from kdiag.model import DnsRecord, Finding, Remediation

CNAME_TTL = 300
# A placeholder the user must replace; shown only when no control plane could be named with certainty.
CP_PLACEHOLDER = "CONTROL_PLANE_ID"

CODES = {
    "ready": "Konnect has the domain in state ready, and its online status verifies the CNAME and the certificate.",
    "pending": "Konnect is still setting the domain up (state created or initializing); says how long ago it was "
               "created.",
    "error": "Konnect's one validation failed (state error, with state_metadata.reason) and the DNS is still "
             "not right.",
    "not-attached": "Konnect has no custom domain of this name (or is removing it): add it.",
    "unverified": "Konnect's online status says the CNAME or the certificate is unverified, and the DNS is still "
                  "not right.",
    "stale-validation": "The DNS is right now, but Konnect still reports the failure of its one validation: "
                        "serverless domains are never re-validated, so remove and re-add the domain.",
    "no-token": "KONNECT_TOKEN is not set, so Konnect was not asked (status skip).",
    "bad-token": "Konnect refused the token (401), or it lacks a permission (403) (status error).",
    "lookup-failed": "Konnect could not be asked (unreachable, too slow, 5xx or rate limited after the retries), "
                     "or kdiag's resolver did not answer (status error).",
    "unknown-state": "Konnect reports a domain state kdiag does not know (status error).",
}

PENDING = ("created", "initializing")
GONE = ("terminating", "terminated")


@rule("konnect-domain-status", "Konnect has the domain and it is ready", codes=CODES)
def konnect_domain_status(ctx: Context) -> Finding:
    konnect = ctx.konnect
    name = ctx.domain
    if konnect is None:
        return skipped("no-token", "KONNECT_TOKEN is not set; set it to a Konnect personal (kpat_…) or system "
                       "account (spat_…) token to check the domain in Konnect")
    try:
        domain = konnect.find_custom_domain(name)
    except KonnectError as exc:
        return _api_error(exc, f"cannot tell whether Konnect has {name}")
    if domain is None or domain.get("state") in GONE:
        return _not_attached(ctx, domain)

    state = str(domain.get("state"))
    facts: dict[str, Any] = {
        "domain_id": domain.get("id"),
        "state": state,
        "control_plane_id": domain.get("control_plane_id"),
        "control_plane_geo": domain.get("control_plane_geo"),
        "created_at": domain.get("created_at"),
        "state_metadata": domain.get("state_metadata") or {},
    }
    target = _expected_target(ctx, domain, facts)
    if state in PENDING:
        return _pending(ctx, domain, target, facts)
    if state == "error":
        # One line, whatever Konnect put in the reason.
        reason = " ".join(str((domain.get("state_metadata") or {}).get("reason") or "no reason given").split())
        dns = _dns_now(ctx, target)
        facts["dns_now"] = dns.as_facts()
        if dns.ok:
            return _stale(ctx, f"Konnect reports {name} as error ({reason!r})", dns, facts)
        return failed("error", f"Konnect reports {name} as error: {reason!r}; and now {dns.detail}",
                      _fix_dns_then_readd(ctx, target, dns), **facts)
    if state != "ready":
        return errored("unknown-state", f"Konnect reports {name} in state {state!r}, which kdiag does not know; "
                       "cannot tell whether it is ready", **facts)
    try:
        online = konnect.custom_domain_online_status(str(domain.get("id")))
    except KonnectError as exc:
        return _api_error(exc, f"cannot read Konnect's online status of {name}", facts)
    facts["online_status"] = online
    bad = [k for k in ("cname", "ssl") if online.get(k) != "verified"]
    if not bad:
        return passed("ready", f"Konnect has {name} ready (control plane {domain.get('control_plane_id')}, "
                      f"{domain.get('control_plane_geo')}); online status: cname verified, ssl verified", **facts)
    said = ", ".join(f"{k} {online.get(k, 'missing')}" for k in bad)
    dns = _dns_now(ctx, target)
    facts["dns_now"] = dns.as_facts()
    if dns.ok:
        return _stale(ctx, f"Konnect has {name} ready but its online status says {said}", dns, facts)
    return failed("unverified", f"Konnect's online status for {name} says {said}; and now {dns.detail}",
                  _fix_dns_then_readd(ctx, target, dns), **facts)


# -- the expected target ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    name: str | None  # None: accept any host under the gateway suffix
    how: str
    certain: bool  # True only for a --target the user gave


def _expected_target(ctx: Context, domain: dict[str, Any], facts: dict[str, Any]) -> _Target:
    if ctx.options.target:
        found = _Target(ctx.options.target, "given with --target", True)
    else:
        found = _derive(ctx, domain)
    facts["expected_target"] = found.name
    facts["expected_target_source"] = found.how
    return found


def _derive(ctx: Context, domain: dict[str, Any]) -> _Target:
    assert ctx.konnect is not None
    cp_id = str(domain.get("control_plane_id") or "")
    geo = str(domain.get("control_plane_geo") or ctx.konnect.region)
    fallback = f"any host under {ctx.options.gateway_suffix}"
    if not cp_id or geo not in REGIONS:
        return _Target(None, f"{fallback}: Konnect names no control plane for the domain", False)
    try:
        cp = ctx.konnect.get_control_plane(cp_id, geo)
    except KonnectError as exc:
        return _Target(None, f"{fallback}: could not read control plane {cp_id} ({exc})", False)
    derived = derive_target(cp, geo, ctx.options.gateway_suffix)
    if derived.target is None:
        return _Target(None, f"{fallback}: {derived.how}", False)
    return _Target(derived.target, derived.how, False)


# -- the DNS, re-derived from the shared lookup layer ------------------------------------------------------------


@dataclass(frozen=True)
class _DnsNow:
    ok: bool
    detail: str  # one phrase: what the DNS says now
    chain: tuple[str, ...] = ()
    caa_ok: bool | None = None
    answered: bool = True
    reached: str | None = None

    def as_facts(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "chain": list(self.chain), "caa_permits": self.caa_ok}


def _dns_now(ctx: Context, target: _Target) -> _DnsNow:
    """Does the DNS pass now? The CNAME chain reaches the target, which resolves, and CAA permits issuance."""
    name = ctx.domain
    a, aaaa, cname = ctx.dns.lookup_many([(name, "A"), (name, "AAAA"), (name, "CNAME")])
    silent = next((x for x in (a, cname) if not x.answered), None)
    if silent is not None:
        return _DnsNow(False, f"kdiag's resolver did not answer for {silent.rdtype} {name} "
                       f"({silent.describe()})", answered=False)
    hops = list(a.cnames) or list(cname.records)
    targets = [h.target for h in hops]
    shown = " -> ".join([name, *targets]) if targets else f"{name} has no CNAME"
    if target.name is not None:
        reached = target.name if target.name in targets else None
    else:
        reached = next((t for t in targets if t.endswith("." + ctx.options.gateway_suffix)), None)
    want = target.name or f"a host under {ctx.options.gateway_suffix}"
    if reached is None:
        return _DnsNow(False, f"{shown}, not {want}", tuple(targets))
    addresses = [r.value for r in (*a.records, *aaaa.records)]
    if not addresses:
        return _DnsNow(False, f"{shown}, but {targets[-1]} has no address ({a.rcode})", tuple(targets), reached=reached)
    caa_ok, caa_detail = _caa_permits(ctx)
    if caa_ok is not True:
        return _DnsNow(False, f"{shown}, but {caa_detail}", tuple(targets), caa_ok, caa_ok is not None, reached)
    return _DnsNow(True, f"{shown} ({', '.join(addresses)}) and {caa_detail}", tuple(targets), True, True, reached)


def _caa_permits(ctx: Context) -> tuple[bool | None, str]:
    """Boulder's CAA lookup and verdict (as caa-permits-letsencrypt does it), reduced to yes/no/unknown."""
    issuer = ctx.options.caa_identity
    labels = ctx.domain.split(".")
    names = [".".join(labels[i:]) for i in range(len(labels))]
    for answer in ctx.dns.lookup_many((n, "CAA") for n in names):
        if not answer.answered:
            return None, f"kdiag's resolver did not answer for CAA {answer.name}"
        if answer.rcode == "NXDOMAIN" and answer.name != names[-1]:
            continue  # Boulder: NXDOMAIN below the TLD is an empty set
        if answer.rcode != "NOERROR":
            return False, f"the CAA lookup at {answer.name} failed ({answer.rcode}), which forbids issuance"
        if answer.records:
            records = [from_wire(r.caa) for r in answer.records]
            if judge_set(records, issuer, ctx.options.validation_methods).permitted:
                return True, f"CAA at {answer.records[0].name} permits {issuer}"
            return False, f"CAA at {answer.records[0].name} does not permit {issuer} (see caa-permits-letsencrypt)"
    return True, f"no CAA restricts {issuer}"


# -- findings ------------------------------------------------------------------------------------------------------


def _readd_command(name: str) -> tuple[str, ...]:
    return ("kdiag", "konnect", "domain", "readd", name)


def _stale(ctx: Context, konnect_says: str, dns: _DnsNow, facts: dict[str, Any]) -> Finding:
    name = ctx.domain
    return failed(
        "stale-validation",
        f"{konnect_says}, but the DNS is right now: {dns.detail}; Konnect validates a serverless domain once and "
        "never again",
        Remediation(summary=f"Remove and re-add {name} in Konnect to force a new validation (same control plane "
                            "and geo)",
                    commands=(_readd_command(name),)),
        **facts,
    )


def _fix_dns_then_readd(ctx: Context, target: _Target, dns: _DnsNow) -> Remediation:
    name = ctx.domain
    if not dns.answered:
        return Remediation(summary="Check the DNS with a working resolver (--nameserver), fix it, then re-add "
                                   f"{name} in Konnect", commands=(_readd_command(name),))
    records: tuple[DnsRecord, ...] = ()
    if dns.reached is None and target.name is not None:
        records = (DnsRecord(name, "CNAME", target.name + ".", CNAME_TTL),)
        what = f"Point {name} at {target.name} with one CNAME" + ("" if target.certain else
                                                                  " (derived from the control plane: confirm it "
                                                                  "in Konnect → Custom Domains, or pass --target)")
    elif dns.reached is None:
        what = (f"Point {name} with one CNAME at the gateway hostname Konnect shows under Custom Domains "
                "(rerun with --target VALUE for the exact record)")
    elif dns.caa_ok is not True:
        what = f"Let letsencrypt.org issue for {name} (see caa-permits-letsencrypt for the exact CAA record)"
    else:
        what = f"Make {dns.reached} resolve (re-copy the CNAME value from Konnect)"
    return Remediation(summary=f"{what}; then re-add the domain, because Konnect never re-validates it by itself",
                       records=records, commands=(_readd_command(name),))


def _pending(ctx: Context, domain: dict[str, Any], target: _Target, facts: dict[str, Any]) -> Finding:
    name = ctx.domain
    created = parse_time(domain.get("created_at"))
    age = f"created {ago((ctx.now() - created).total_seconds())} ago" if created else "creation time unknown"
    if created:
        facts["age_seconds"] = round((ctx.now() - created).total_seconds())
    dns = _dns_now(ctx, target)
    facts["dns_now"] = dns.as_facts()
    if dns.ok or not dns.answered:
        return warned("pending", f"Konnect is still setting {name} up (state {domain.get('state')}, {age}); "
                      "check again in a few minutes", **facts)
    return warned("pending",
                  f"Konnect is still setting {name} up (state {domain.get('state')}, {age}), but now {dns.detail}: "
                  "its one validation will fail",
                  _fix_dns_then_readd(ctx, target, dns), **facts)


def _not_attached(ctx: Context, domain: dict[str, Any] | None) -> Finding:
    name = ctx.domain
    assert ctx.konnect is not None
    facts: dict[str, Any] = {"state": domain.get("state") if domain else None}
    cp_id, geo, how = _control_plane_for_add(ctx)
    facts.update(control_plane_id=cp_id, control_plane_source=how)
    argv = ("kdiag", "konnect", "domain", "add", name, "--control-plane", cp_id or CP_PLACEHOLDER,
            "--region", geo)
    summary = f"Add {name} to Konnect"
    if cp_id is None:
        summary += f" (replace {CP_PLACEHOLDER}: {how})"
    else:
        summary += f" on control plane {cp_id} ({how})"
    summary += ", then create the CNAME record it prints"
    if domain is not None:
        message = f"Konnect is removing {name} (state {domain.get('state')}); it is not attached to a gateway"
    else:
        message = f"Konnect has no custom domain {name} (searched every control plane the token can read)"
    return failed("not-attached", message, Remediation(summary=summary, commands=(argv,)), **facts)


def _control_plane_for_add(ctx: Context) -> tuple[str | None, str, str]:
    """(control plane id or None, geo, how it was chosen): --control-plane, else the only serverless one."""
    assert ctx.konnect is not None
    geo = ctx.konnect.region
    if ctx.options.control_plane:
        return ctx.options.control_plane, geo, "given with --control-plane"
    try:
        found = ctx.konnect.list_control_planes(cluster_types=(SERVERLESS_V0, SERVERLESS_V1))
    except KonnectError as exc:
        return None, geo, f"could not list control planes: {exc}"
    if len(found) == 1:
        return str(found[0]["id"]), geo, f"the only serverless control plane in {geo}, {found[0].get('name')!r}"
    if not found:
        return None, geo, f"no serverless control plane in {geo}; create one with `kdiag konnect cp create NAME`"
    names = ", ".join(f"{cp.get('name')!r}" for cp in found[:5])
    return None, geo, f"{len(found)} serverless control planes in {geo} ({names}); pick one"


def _api_error(exc: KonnectError, consequence: str, facts: dict[str, Any] | None = None) -> Finding:
    code = "bad-token" if isinstance(exc, KonnectAuthError | KonnectTokenError) else "lookup-failed"
    return errored(code, f"{exc}; {consequence}", status=exc.status, **(facts or {}))
