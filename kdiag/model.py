"""What a check found and how to fix it: plain frozen data, no I/O.

A rule returns one `Finding`. The engine wraps it in a `CheckResult` with the rule's id, title and timing.
Renderers only ever see `CheckResult`s; they know nothing about the rules that produced them.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    """How a check came out. Ordered from best to worst in `severity`."""

    PASS = "pass"  # rules: the thing checked is right
    WARN = "warn"  # rules: works now, but risky or odd
    FAIL = "fail"  # rules: the domain is broken; always carries a Remediation
    SKIP = "skip"  # rules: does not apply, or a prerequisite (a token, an address) is missing
    ERROR = "error"  # rules or engine: kdiag could not tell (its resolver did not answer, a bug in a rule)

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.ERROR: 2, Status.FAIL: 3}


@dataclass(frozen=True)
class DnsRecord:
    """One resource record to create or delete, rendered as a zone-file line.

    dnspython parses the record when it is built, so kdiag can never suggest a record that would not load.
    `name` is absolute (a trailing dot is added when missing); `value` is rdata in presentation format.
    """

    name: str
    type: str
    value: str
    ttl: int = 300

    def __post_init__(self) -> None:
        # Imported here: only a run that suggests a fix pays for dnspython (a passing run never builds one).
        import dns.name
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype
        import dns.ttl

        name = dns.name.from_text(self.name)  # raises on an invalid owner
        # A TTL outside 0..2^32-1 (or not an int) renders a zone line nothing can load.
        if type(self.ttl) is not int or not 0 <= self.ttl <= dns.ttl.MAX_TTL:
            raise ValueError(f"TTL {self.ttl!r} is not an integer from 0 to {dns.ttl.MAX_TTL}")
        rdtype = dns.rdatatype.from_text(self.type)
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, self.value, origin=dns.name.root, relativize=False)
        # Store the canonical forms, so two spellings of one record compare equal.
        object.__setattr__(self, "name", name.canonicalize().to_text())  # DNS names compare case-insensitively
        object.__setattr__(self, "type", dns.rdatatype.to_text(rdtype))
        object.__setattr__(self, "value", rdata.to_text())

    def zone_line(self) -> str:
        return f"{self.name} {self.ttl} IN {self.type} {self.value}"


@dataclass(frozen=True)
class Remediation:
    """The exact fix for a finding: records to create and delete, and commands to run.

    Commands are argv tuples; `command_lines()` shell-quotes every argument so that a name containing odd
    characters can never turn a pasted command into something else.
    """

    summary: str
    records: tuple[DnsRecord, ...] = ()
    delete: tuple[DnsRecord, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()

    def command_lines(self) -> list[str]:
        return [shlex.join(argv) for argv in self.commands]

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "records": [r.zone_line() for r in self.records],
            "delete": [r.zone_line() for r in self.delete],
            "commands": self.command_lines(),
        }


@dataclass(frozen=True)
class Finding:
    """What one rule observed. `facts` holds JSON-ready observed data (str, int, float, bool, None, lists,
    dicts of those)."""

    status: Status
    code: str
    message: str
    remediation: Remediation | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Status("fail") is Status.FAIL; a plain string would slip past the check below and the renderers.
        object.__setattr__(self, "status", Status(self.status))
        # The product promise: every failure comes with its fix.
        if self.status is Status.FAIL and self.remediation is None:
            raise ValueError(f"a FAIL finding needs a remediation (code {self.code!r})")


@dataclass(frozen=True)
class CheckResult:
    """A finding stamped by the engine with the rule that produced it."""

    id: str
    title: str
    finding: Finding
    duration_ms: int

    @property
    def status(self) -> Status:
        return self.finding.status


@dataclass(frozen=True)
class Report:
    """One diagnosis of one domain: what `kdiag domain` renders."""

    domain: str
    started_at: str  # RFC 3339 UTC with a Z
    duration_ms: int
    checks: Sequence[CheckResult]
    target: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> Status:
        return overall_status(c.status for c in self.checks)

    @property
    def exit_code(self) -> int:
        return exit_code(c.status for c in self.checks)


def overall_status(statuses: Any) -> Status:
    """The worst status: fail > error > warn > pass (skip counts as pass)."""
    worst = Status.PASS
    for s in statuses:
        if s.severity > worst.severity:
            worst = s
    return worst


# The exit-code contract (README "Exit codes"): Nagios CRITICAL, UNKNOWN, WARNING, OK.
EXIT_OK, EXIT_WARN, EXIT_FAIL, EXIT_UNKNOWN = 0, 1, 2, 3
_EXIT = {Status.PASS: EXIT_OK, Status.SKIP: EXIT_OK, Status.WARN: EXIT_WARN,
         Status.ERROR: EXIT_UNKNOWN, Status.FAIL: EXIT_FAIL}


def exit_code(statuses: Any) -> int:
    return _EXIT[overall_status(statuses)]
