"""Small helpers shared by rule tests: run one rule against a named resolver, the way the CLI does."""

from __future__ import annotations

import os
from typing import NamedTuple

from kdiag.context import Context, Options
from kdiag.declare import Rule
from kdiag.engine import run_one
from kdiag.model import CheckResult
from kdiag.probes.dns import Dns, Nameserver

GATEWAY = "9e454bcfec.kongcloud.dev"


def nameserver_arg(server: object) -> str:
    """`--nameserver` for a FakeDns (anything with `.address`): HOST:PORT."""
    host, port = server.address  # type: ignore[attr-defined]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kdiag_env() -> dict[str, str]:
    """The environment for a kdiag subprocess: no plugins, no colour or width settings, never a real Konnect
    token (a test must not send traffic to Konnect)."""
    drop = ("NO_COLOR", "KONNECT_TOKEN", "KONNECT_URL", "KDIAG_DEBUG", "COLUMNS")
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    environ["KDIAG_NO_PLUGINS"] = "1"
    return environ


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


class Run(NamedTuple):
    exit_code: int
    output: str


def kdiag_domain_inproc(fake_dns: object, *args: str, monkeypatch: object) -> Run:
    """`kdiag domain … --nameserver <fake_dns>` in-process (no plugins, no Konnect token); the exit code is the
    command's, as kdiag.cli.main would exit with."""
    from click.testing import CliRunner

    from kdiag.cli import cli

    monkeypatch.delenv("KONNECT_TOKEN", raising=False)  # type: ignore[attr-defined]
    res = CliRunner().invoke(cli, ["domain", *args, "--nameserver", nameserver_arg(fake_dns), "--timeout", "2",
                                   "--no-color"], obj={"plugins": False}, standalone_mode=False)
    if res.exception is not None:
        raise res.exception
    return Run(res.return_value, res.output)
