"""Small helpers shared by rule tests: run one rule against a named resolver, the way the CLI does."""

from __future__ import annotations

from kdiag.context import Context, Options
from kdiag.engine import run_one
from kdiag.model import CheckResult
from kdiag.probes.dns import Dns, Nameserver
from kdiag.declare import Rule

GATEWAY = "9e454bcfec.kongcloud.dev"


def check(rule: Rule, host: str, port: int, name: str, *, target: str | None = GATEWAY,
          timeout: float = 8.0, **options: object) -> CheckResult:
    """Run `rule` for `name` through the resolver at host:port (always explicit: never the system's)."""
    with Dns([Nameserver(host, port)], timeout=timeout) as dns:
        ctx = Context(domain=name, dns=dns, options=Options(target=target, **options))  # type: ignore[arg-type]
        return run_one(rule, ctx)


def zone_lines(result: CheckResult, field: str) -> list[str]:
    """The remediation's zone-file lines. Lines to delete carry the TTL the resolver reported, which a caching
    resolver counts down, so for "delete" the TTL is replaced by 300 to compare with fixture values."""
    rem = result.finding.remediation
    assert rem is not None, f"{result.id}[{result.finding.code}] has no remediation"
    lines = [r.zone_line() for r in getattr(rem, field)]
    if field == "delete":
        lines = [" ".join([line.split(" ")[0], "300", *line.split(" ")[2:]]) for line in lines]
    return lines
