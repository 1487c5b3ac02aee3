"""public-reachability: the gateway answers publicly for the name.

Let's Encrypt validates a serverless custom domain over the public internet (HTTP-01/TLS-ALPN-01 to the
gateway), and visitors arrive the same way. So every A/AAAA the name has must be globally routable, and each
must answer HTTPS on 443 with a Kong signature. Addresses that are not public are reported and never dialled
(kdiag must not probe a private network because a zone says so). Addresses the user typed with
--connect-to/--resolve are the user's choice and are dialled as given.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from kdiag.context import Context
from kdiag.declare import errored, failed, passed, rule, skipped, warned
from kdiag.model import DnsRecord, Finding, Remediation
from kdiag.probes.http import HttpResult
from kdiag.targets import Destination, Endpoint, describe_address, destination

PORT = 443
KONG_SIGNATURES = "X-Kong-Request-Id, Server/Via kong/x.y.z, X-Kong-*-Latency, or the no-route 404 body"

CODES = {
    "ok": "Every address is globally routable and answers HTTPS on 443 with a Kong signature.",
    "no-route": "Kong answered 404 'no Route matched with those values': the domain reaches the gateway, "
                "but no Route matches it yet (pass, with a note).",
    "private-address": "The name resolves to addresses that are not globally routable (reported, never "
                       "dialled); serverless gateways cannot reach private networks.",
    "no-address": "The name has no A/AAAA record (NXDOMAIN, NODATA or a failing lookup).",
    "connect-failed": "An address does not answer HTTPS on 443 (refused, timed out, TLS or HTTP failure).",
    "not-kong": "HTTPS answers, but nothing in the response says Kong (warn: Kong's headers may be off).",
    "lookup-failed": "Error: kdiag's resolver gave no answer for the name's addresses.",
    "not-configured": "Skipped: the context has no HTTPS client (kdiag used as a library without one).",
}


@rule("public-reachability", "The gateway answers publicly for the name", codes=CODES)
def public_reachability(ctx: Context) -> Finding:
    name = ctx.domain
    if ctx.http is None:
        return skipped("not-configured", "no HTTPS client in this context; nothing was dialled")
    dest = destination(name, PORT, ctx.options.connect_to, ctx.options.resolve, ctx.dns)
    if dest.silent is not None:
        return errored("lookup-failed", f"kdiag's resolver gave no answer for {dest.silent.rdtype} {dest.host}: "
                       f"{dest.silent.describe()}; cannot tell where {name} goes", server=dest.silent.server)
    if dest.withheld:
        return _private(ctx, dest)
    if not dest.endpoints:
        return _no_address(ctx, dest)
    results = _fetch_all(ctx, dest.endpoints)
    facts: dict[str, object] = {"connect_host": dest.host, "override": dest.override or None,
                                "ipv4": [_result_facts(r) for r in results if ":" not in r.address],
                                "ipv6": [_result_facts(r) for r in results if ":" in r.address]}
    broken = [r for r in results if not r.answered]
    if broken:
        return _connect_failed(ctx, dest, results, broken, facts)
    silent = [r for r in results if not r.kong_signals()]
    if silent:
        shown = "; ".join(f"{r.endpoint} answered HTTP {r.status} with Server: {r.header('server') or '(none)'}"
                          for r in silent)
        return warned(
            "not-kong",
            f"{shown}, and nothing says Kong ({KONG_SIGNATURES}): another server may answer for {name}, or Kong "
            "runs with headers = off",
            Remediation(summary=f"If {name} should reach the Konnect gateway, make it a CNAME straight to the "
                                "gateway hostname (no CDN or proxy in front); if Kong's headers are off on purpose, "
                                "this warning is expected",
                        records=_cname_fix(ctx)),
            **facts)
    version = next((r.kong_version for r in results if r.kong_version), None)
    kong = f"Kong {version}" if version else "Kong"
    facts["kong_version"] = version
    where = ", ".join(r.endpoint for r in results)
    if any(r.no_route for r in results):
        return passed(
            "no-route",
            f"{kong} answered at {where} with 404 \"no Route matched with those values\": the domain reaches the "
            f"gateway; note that no Route matches host {name} and path / yet (add one when you are ready)",
            **facts)
    signals = results[0].kong_signals()
    return passed("ok", f"{kong} answered HTTP {results[0].status} for {name} at {where} ({signals[0]})",
                  **facts)


def _fetch_all(ctx: Context, endpoints: tuple[Endpoint, ...]) -> list[HttpResult]:
    assert ctx.http is not None
    http = ctx.http
    if len(endpoints) == 1:
        return [http.get(endpoints[0].address, endpoints[0].port, ctx.domain)]
    # In parallel: a stalling address must not add its timeout to every other address's.
    with ThreadPoolExecutor(max_workers=len(endpoints), thread_name_prefix="kdiag-http") as pool:
        return list(pool.map(lambda e: http.get(e.address, e.port, ctx.domain), endpoints))


def _result_facts(r: HttpResult) -> dict[str, object]:
    return {"address": r.endpoint, "outcome": r.outcome, "error": r.error or None, "alert": r.alert or None,
            "status": r.status or None, "server": r.header("server"), "kong": r.kong_signals(),
            "elapsed_ms": r.elapsed_ms}


def _private(ctx: Context, dest: Destination) -> Finding:
    name = ctx.domain
    shown = ", ".join(f"{e.address} ({describe_address(e.address)})" for e in dest.withheld)
    withheld = {e.address for e in dest.withheld}
    private = [r for a in dest.answers for r in a.records if r.type in ("A", "AAAA") and r.value in withheld]
    own = [r for r in private if r.name == name]
    via = "" if dest.host == name else f" (through {dest.host})"
    facts = {"addresses": [e.address for e in dest.endpoints], "withheld": sorted(withheld),
             "connect_host": dest.host, "owners": sorted({r.name for r in private})}
    message = (f"{name}{via} resolves to {shown}: not publicly routable, so neither Let's Encrypt nor visitors "
               "can reach it (kdiag did not connect to it)")
    why = ("serverless gateways run in Kong's cloud and cannot reach private networks; for private connectivity "
           "use Dedicated Cloud Gateways")
    if own or not private:
        return failed("private-address", message, Remediation(
            summary=f"Make {name} a CNAME to the gateway hostname and publish no private addresses for it: {why}",
            records=_cname_fix(ctx), delete=tuple(DnsRecord(r.name, r.type, r.value, r.ttl) for r in own)),
            **facts)
    # The private addresses belong to the host the name's CNAME leads to, not to the name itself.
    holder = private[0].name
    expected = ctx.options.target
    is_gateway = holder == expected if expected else holder.endswith("." + ctx.options.gateway_suffix)
    if is_gateway:
        return failed("private-address", f"{message}; they are the addresses of the gateway hostname {holder}",
                      Remediation(
                          summary=f"{holder} publishes non-public addresses, which you cannot change: check that "
                                  "it is exactly the CNAME value Konnect shows for the domain, and if it is, "
                                  "contact Kong support",
                          commands=(("kdiag", "konnect", "domain", "list"),)),
                      **facts)
    return failed("private-address", f"{message}; they are the addresses of {holder}, where its CNAME leads",
                  Remediation(summary=f"Point {name} at the gateway hostname instead of {holder}: {why}",
                              records=_cname_fix(ctx)),
                  **facts)


def _no_address(ctx: Context, dest: Destination) -> Finding:
    name = ctx.domain
    rcodes = sorted({a.rcode for a in dest.answers})
    if "NXDOMAIN" in rcodes:
        what = "does not exist (NXDOMAIN)"
    elif rcodes == ["NOERROR"]:
        what = "has no A or AAAA record"
    else:
        what = f"has no address: the resolver answered {'/'.join(rcodes)}"
    return failed(
        "no-address",
        f"{dest.host} {what}, so nothing can reach the gateway for {name}",
        Remediation(summary=f"Create the CNAME from {name} to the gateway hostname Konnect shows (see "
                            "dns-cname-target)" + ("" if ctx.options.target else
                                                   "; rerun with --target VALUE to get the exact record"),
                    records=_cname_fix(ctx)),
        rcodes=rcodes, connect_host=dest.host)


def _connect_failed(ctx: Context, dest: Destination, results: list[HttpResult], broken: list[HttpResult],
                    facts: dict[str, object]) -> Finding:
    name = ctx.domain
    shown = "; ".join(f"{r.endpoint} ({'IPv6' if ':' in r.address else 'IPv4'}): {r.error}"
                      + (f" [alert {r.alert}]" if r.alert else "") for r in broken)
    fine = [r.endpoint for r in results if r.answered]
    tail = f"; {', '.join(fine)} answered" if fine else ""
    v6_note = " Let's Encrypt tries IPv6 first and does not fall back to IPv4 on HTTP errors, so a broken AAAA " \
              "alone breaks issuance." if any(":" in r.address for r in broken) else ""
    commands = tuple(("curl", "-sv", "-o", "/dev/null", "--connect-to",
                      f"{name}:{PORT}:{_bracket(r.address)}:{r.port}", f"https://{name}/") for r in broken)
    return failed(
        "connect-failed",
        f"HTTPS for {name} failed at {shown}{tail}",
        Remediation(summary=f"Every address {name} publishes must answer HTTPS on port 443: fix or remove the ones "
                            f"that do not (check the CNAME points at the gateway and no firewall blocks 443)."
                            + v6_note,
                    records=_cname_fix(ctx) if not dest.override else (),
                    commands=commands),
        **facts)


def _cname_fix(ctx: Context) -> tuple[DnsRecord, ...]:
    target = ctx.options.target
    return (DnsRecord(ctx.domain, "CNAME", target + ".", 300),) if target else ()


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address
