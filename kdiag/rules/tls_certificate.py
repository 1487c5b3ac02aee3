"""tls-certificate: the certificate a browser gets for the name is a valid Let's Encrypt one.

Konnect gets a Let's Encrypt certificate for every serverless custom domain once the CNAME validates. The rule
handshakes with SNI = the name (to the address --connect-to/--resolve give, else the name's first globally
routable address), keeps the chain as served, and checks it offline in the order a person should fix things:
Kong's default certificate (no certificate attached yet), a staging or foreign issuer, the hostname, the
validity window, the chain's completeness, trust, and finally how soon it expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from kdiag.context import Context
from kdiag.declare import errored, failed, passed, rule, skipped, warned
from kdiag.letsencrypt import RENEW_AT_FRACTION, TRUSTED_ROOTS, identify
from kdiag.model import DnsRecord, Finding, Remediation
from kdiag.probes.tls import (
    TLS_TIMEOUT,
    Handshake,
    common_name,
    covers,
    dns_sans,
    issued_by,
    key_type,
    load_der_chain,
    organization,
    self_issued,
    served_path,
    verify,
)
from kdiag.targets import Destination, describe_address, destination

if TYPE_CHECKING:
    from cryptography import x509

PORT = 443

CODES = {
    "ok": "A trusted, complete Let's Encrypt chain that covers the name and is well within its validity.",
    "not-letsencrypt": "The certificate comes from another issuer (a CDN, proxy or old host answers).",
    "staging": "The certificate comes from Let's Encrypt's staging environment, which no browser trusts.",
    "kong-default-cert": "Kong's self-signed default certificate (CN=localhost, O=Kong): the request reached "
                         "the gateway, but no certificate is attached to the name yet.",
    "hostname-mismatch": "No subjectAltName covers the name (RFC 9525 matching).",
    "expired": "A served certificate's notAfter has passed.",
    "not-yet-valid": "A served certificate's notBefore is in the future.",
    "expiring-soon": "Fewer than --expiry-warn-days days left (a certificate whose whole lifetime is shorter: "
                     "past its renewal point at 2/3 of the lifetime).",
    "incomplete-chain": "The server does not send the intermediate certificate(s) clients need.",
    "untrusted": "The chain does not validate to a trusted root (system store plus --ca-bundle).",
    "handshake-failed": "TCP connected, but the TLS handshake failed (alert, silence, or not TLS).",
    "unreachable": "Nothing accepts TCP connections on port 443 at the address(es) tried.",
    "no-address": "Skipped: no address to connect to (the name has no public A/AAAA; see dns-cname-target "
                  "and public-reachability).",
    "lookup-failed": "Error: kdiag's resolver gave no answer for the name's addresses.",
    "not-configured": "Skipped: the context has no TLS client (kdiag used as a library without one).",
}


@rule("tls-certificate", "The certificate a browser gets for the name is a valid Let's Encrypt one", codes=CODES)
def tls_certificate(ctx: Context) -> Finding:
    name = ctx.domain
    if ctx.tls is None:
        return skipped("not-configured", "no TLS client in this context; nothing was dialled")
    dest = destination(name, PORT, ctx.options.connect_to, ctx.options.resolve, ctx.dns)
    if dest.silent is not None:
        return errored("lookup-failed", f"kdiag's resolver gave no answer for {dest.silent.rdtype} {dest.host}: "
                       f"{dest.silent.describe()}; cannot tell where to connect", server=dest.silent.server)
    if not dest.dialable:
        return _no_address(dest)
    tried: list[Handshake] = []
    for endpoint in dest.dialable:
        hs = ctx.tls.handshake(endpoint.address, endpoint.port, name)
        tried.append(hs)
        if hs.connected:
            break
    hs = tried[-1]
    route = _route_facts(dest)
    if not hs.connected:
        return _unreachable(name, dest, tried, route)
    if hs.outcome != "ok" or not hs.chain:
        return _handshake_failed(name, hs, route)
    try:
        chain = load_der_chain(hs.chain)
    except ValueError as exc:
        return failed("untrusted", f"{hs.endpoint} served a certificate for {name} that cannot be parsed: {exc}",
                      Remediation(summary="Serve a well-formed certificate chain (PEM fullchain from the CA)",
                                  commands=(_s_client(name, hs),)),
                      **route, address=hs.endpoint)
    return _judge(ctx, hs, chain, route)


def _judge(ctx: Context, hs: Handshake, chain: list[x509.Certificate], route: dict[str, object]) -> Finding:
    name = ctx.domain
    now = ctx.now()
    leaf = chain[0]
    who = identify(leaf, ctx.options.letsencrypt_intermediates)
    facts = _cert_facts(leaf, chain, now, hs)
    facts.update(route)
    facts.update(issuer_kind=who.kind, match_basis=who.basis, intermediate=who.intermediate or None,
                 trust_store=ctx.tls.trust_store if ctx.tls else None)
    sans = dns_sans(leaf)
    issuer = leaf.issuer.rfc4514_string()
    at = f"{hs.endpoint} (SNI {name})"

    if _is_kong_default(leaf):
        return failed(
            "kong-default-cert",
            f"{at} served Kong's default self-signed certificate (CN=localhost, O=Kong): the request reached "
            f"the gateway, but no certificate is attached to {name} yet",
            Remediation(summary="For a new serverless custom domain this usually means Let's Encrypt validation "
                                "failed or is still pending: fix what dns-cname-target and caa-permits-letsencrypt "
                                "report, check the domain's status in Konnect (Gateway Manager -> Custom Domains), "
                                "and wait a few minutes after the CNAME resolves",
                        commands=(("kdiag", "domain", name, "--only", "dns-cname-target,caa-permits-letsencrypt"),)),
            **facts)
    if who.kind == "staging":
        return failed(
            "staging",
            f"{at} served a Let's Encrypt STAGING certificate (issuer {issuer}), which no browser trusts",
            Remediation(summary="The certificate was issued by an ACME client pointed at Let's Encrypt's staging "
                                "directory: switch it to https://acme-v02.api.letsencrypt.org/directory and "
                                "re-issue; if Konnect should serve the name, point its CNAME straight at the gateway",
                        records=_cname_fix(ctx), commands=(_s_client(name, hs),)),
            **facts)
    if who.kind != "letsencrypt":
        return failed(
            "not-letsencrypt",
            f"{at} served a certificate issued by {issuer}, not Let's Encrypt: something other than the "
            "Konnect gateway answers for the name",
            Remediation(summary=f"Konnect's serverless gateways serve Let's Encrypt certificates only: make {name} "
                                f"a CNAME straight to the gateway hostname (no CDN or proxy in front), or remove "
                                f"the certificate a proxy serves for it",
                        records=_cname_fix(ctx), commands=(_s_client(name, hs),)),
            **facts)
    if not any(covers(p, name) for p in sans):
        shown = ", ".join(sans) or "no DNS names"
        return failed(
            "hostname-mismatch",
            f"{at} served a Let's Encrypt certificate for {shown}, which does not cover {name}",
            Remediation(summary=f"The gateway has no certificate for {name} yet and answered with another domain's: "
                                f"add {name} as a custom domain in Konnect (or check it is not still pending); "
                                "a wildcard covers exactly one label (*.example.com covers a.example.com, not "
                                "example.com or a.b.example.com)",
                        commands=(_s_client(name, hs),)),
            **facts)
    # Only the leaf's window: an expired extra certificate in the served chain (like the old DST Root CA X3
    # cross-sign) is ignored by clients that find another path; trust validation judges the rest.
    if leaf.not_valid_after_utc <= now:
        days = (now - leaf.not_valid_after_utc).days
        return failed(
            "expired",
            f"{at}: the certificate expired on {_rfc3339(leaf.not_valid_after_utc)} ({days} days ago)",
            Remediation(summary="Renewal has failed: Let's Encrypt re-validates the name at each renewal, so fix "
                                "what dns-cname-target and caa-permits-letsencrypt report, then check the "
                                "domain's status in Konnect (Gateway Manager -> Custom Domains)",
                        commands=(_s_client(name, hs),)),
            **facts)
    if leaf.not_valid_before_utc > now:
        return failed(
            "not-yet-valid",
            f"{at}: the certificate is not valid before {_rfc3339(leaf.not_valid_before_utc)}",
            Remediation(summary="Either this machine's clock is behind (check it with NTP) or the issuer's was "
                                "ahead; compare the clocks, and re-issue if the certificate's start is wrong",
                        commands=(("date", "-u"), _s_client(name, hs))),
            **facts)
    path = served_path(chain)
    anchors = ctx.tls.anchors if ctx.tls else ()
    top = path[-1]
    complete = (self_issued(top) or any(issued_by(top, a) for a in anchors)
                or common_name(top.issuer) in TRUSTED_ROOTS)
    if hs.chain_captured and not complete:
        missing = common_name(top.issuer) or top.issuer.rfc4514_string()
        sent = ", ".join(_label(c) for c in chain)
        return failed(
            "incomplete-chain",
            f"{at} sends only {sent}; the issuer {missing!r} is missing, so clients without it cached fail with "
            "'unable to get local issuer certificate'",
            Remediation(summary=f"Serve the full chain (Let's Encrypt's fullchain.pem: the certificate followed by "
                                f"the intermediate {missing}), not the certificate alone",
                        commands=(_s_client(name, hs),)),
            missing_issuer=missing, **facts)
    trust = verify(chain, name, anchors, now)
    if not trust.trusted:
        return failed(
            "untrusted",
            f"{at}: the chain for {name} does not validate to a trusted root ({trust.error}; trust store: "
            f"{facts['trust_store']})",
            Remediation(summary="Serve Let's Encrypt's default chain, which ends at ISRG Root X1/X2; if this is a "
                                "test deployment with a private CA, pass its root with --ca-bundle FILE",
                        commands=(_s_client(name, hs),)),
            verify_error=trust.error, **facts)
    facts["verified_path"] = list(trust.path)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    left = leaf.not_valid_after_utc - now
    threshold = timedelta(days=ctx.options.expiry_warn_days)
    if lifetime <= threshold:
        # A certificate that lives no longer than the threshold (6-day short-lived ones) would always warn:
        # for those, warn once its renewal point (2/3 of the lifetime) has passed.
        threshold = lifetime * (1 - RENEW_AT_FRACTION)
    if left < threshold:
        renew_by = leaf.not_valid_before_utc + lifetime * RENEW_AT_FRACTION
        overdue = (now - renew_by).days
        return warned(
            "expiring-soon",
            f"{at}: the certificate expires on {_rfc3339(leaf.not_valid_after_utc)}, in {_days(left)}; it is valid for "
            f"{_days(lifetime)} and Let's Encrypt clients renew at 2/3 of the lifetime ({_days(lifetime / 3)} "
            f"before the end), so it should have been renewed by {renew_by.date().isoformat()} "
            f"({overdue} days ago)",
            Remediation(summary="Renewal is overdue: Let's Encrypt re-validates the name at renewal, so fix what "
                                "dns-cname-target and caa-permits-letsencrypt report and check the domain in "
                                "Konnect before the certificate expires"),
            renew_by=_rfc3339(renew_by), **facts)
    via = f"{who.intermediate} ({who.status})" if who.intermediate else "Let's Encrypt"
    return passed("ok", f"{at}: Let's Encrypt certificate via {via} for {', '.join(sans)}, valid until "
                  f"{_rfc3339(leaf.not_valid_after_utc)} ({_days(left)} left)", **facts)


# -- findings that need no certificate ----------------------------------------------------------------------


def _no_address(dest: Destination) -> Finding:
    withheld = [f"{e.address} ({describe_address(e.address)})" for e in dest.withheld]
    if withheld:
        return skipped("no-address", f"{dest.host} has only non-public addresses ({', '.join(withheld)}), which "
                       "kdiag never dials; see public-reachability", withheld=[e.address for e in dest.withheld])
    rcodes = sorted({a.rcode for a in dest.answers})
    return skipped("no-address", f"{dest.host} has no A or AAAA record ({'/'.join(rcodes)}); see dns-cname-target",
                   rcodes=rcodes)


def _unreachable(name: str, dest: Destination, tried: list[Handshake], route: dict[str, object]) -> Finding:
    errors = {hs.endpoint: hs.error for hs in tried}
    shown = "; ".join(f"{ep}: {err}" for ep, err in errors.items())
    first = tried[0]
    return failed(
        "unreachable",
        f"nothing answers on port {PORT} for {name}: {shown}",
        Remediation(summary=f"Nothing accepts connections on {', '.join(errors)}: check that {name} points at the "
                            "gateway (dns-cname-target) and that no firewall blocks port 443",
                    commands=(("curl", "-sv", "-o", "/dev/null", "--connect-to",
                               f"{name}:{PORT}:{_bracket(first.address)}:{first.port}", f"https://{name}/"),)),
        **route, errors=errors)


def _handshake_failed(name: str, hs: Handshake, route: dict[str, object]) -> Finding:
    if hs.outcome == TLS_TIMEOUT:
        why = "the server accepted TCP but never answered the TLS handshake"
    else:
        why = hs.error or "the server sent no certificate"
    return failed(
        "handshake-failed",
        f"{hs.endpoint} (SNI {name}): {why}" + (f" [alert {hs.alert}]" if hs.alert else ""),
        Remediation(summary=f"The server at {hs.endpoint} will not complete TLS for {name}: a gateway that has no "
                            f"certificate or route for the name often refuses the handshake; add {name} as a custom "
                            "domain in Konnect, or fix what answers on that address",
                    commands=(_s_client(name, hs),)),
        **route, address=hs.endpoint, alert=hs.alert or None, error=hs.error)


# -- helpers -------------------------------------------------------------------------------------------------


def _is_kong_default(cert: x509.Certificate) -> bool:
    # Kong's prefix_handler generates it: subject = issuer = C=US, ST=California, L=San Francisco, O=Kong,
    # OU=IT Department, CN=localhost (tls-probes-kong.md §4.4).
    return (self_issued(cert) and common_name(cert.subject) == "localhost"
            and organization(cert.subject) == "Kong")


def _label(cert: x509.Certificate) -> str:
    """A certificate's name for messages: its CN, its DN, or (LE's CN-less leaves) its first DNS name."""
    if common_name(cert.subject):
        return repr(common_name(cert.subject))
    if cert.subject.rfc4514_string():
        return repr(cert.subject.rfc4514_string())
    sans = dns_sans(cert)
    return f"the certificate for {sans[0]}" if sans else "a certificate with an empty subject"


def _dn(name: x509.Name) -> str:
    return name.rfc4514_string() or "(empty)"


def _cert_facts(leaf: x509.Certificate, chain: list[x509.Certificate], now: datetime,
                hs: Handshake) -> dict[str, object]:
    return {
        "address": hs.endpoint,
        "tls_version": hs.version or None,
        "subject": _dn(leaf.subject),
        "issuer": leaf.issuer.rfc4514_string(),
        "sans": dns_sans(leaf),
        "not_before": _rfc3339(leaf.not_valid_before_utc),
        "not_after": _rfc3339(leaf.not_valid_after_utc),
        "days_left": round((leaf.not_valid_after_utc - now).total_seconds() / 86400, 1),
        "key_type": key_type(leaf),
        "chain_subjects": [_dn(c.subject) for c in chain],
        "chain_captured": hs.chain_captured,
        "chain_source": hs.chain_source,
    }


def _route_facts(dest: Destination) -> dict[str, object]:
    return {"connect_host": dest.host, "override": dest.override or None,
            "withheld": [e.address for e in dest.withheld]}


def _cname_fix(ctx: Context) -> tuple[DnsRecord, ...]:
    target = ctx.options.target
    return (DnsRecord(ctx.domain, "CNAME", target + ".", 300),) if target else ()


def _s_client(name: str, hs: Handshake) -> tuple[str, ...]:
    return ("openssl", "s_client", "-connect", hs.endpoint, "-servername", name, "-showcerts")


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days >= 2:
        return f"{int(days)} days"
    return f"{delta.total_seconds() / 3600:.0f} hours"
