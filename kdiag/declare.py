"""Declaring rules: the `Rule` value, the `@rule` decorator and the finding helpers.

(The module is `declare`, not `rule`: a submodule named like the `kdiag.rule` decorator would shadow it as a
package attribute once imported, and `from kdiag import rule` would then give the module.)

A rule is a plain function `check(ctx) -> Finding` plus a frozen declaration (id, title, the closed set of
codes it may emit). Nothing registers itself on import: built-in rules are listed in `kdiag.rules.BUILTIN`,
third-party rules arrive through the `kdiag.rules` entry-point group (see `kdiag.registry`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdiag.model import Finding, Remediation, Status

if TYPE_CHECKING:
    from kdiag.context import Context

CheckFn = Callable[["Context"], Finding]
AsksFn = Callable[[str], Iterable[tuple[str, str]]]

_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Rule:
    """A check kdiag can run.

    Attributes:
        id: stable kebab-case id; never renamed once released (runbooks and monitoring key on it).
        title: what "pass" means, as a sentence.
        codes: every short code the rule may emit, with a one-line meaning.
        origin: "built in", or the distribution name of the plugin that supplied the rule.
        asks: optional; given a domain, the DNS questions `(name, type)` the rule always asks first for it.
            Only an optimisation: `kdiag scan` asks them for a whole batch of domains at once before
            diagnosing it, so the rule then finds the answers cached. A question the rule would not ask costs
            a wasted query; one it asks but does not declare costs a round trip of its own.
    """

    id: str
    title: str
    check: CheckFn = field(compare=False)
    codes: Mapping[str, str]
    origin: str = "built in"
    asks: AsksFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"rule id {self.id!r} is not kebab-case")
        bad = [c for c in self.codes if not _ID.match(c)]
        if bad:
            raise ValueError(f"rule {self.id}: codes must be kebab-case: {', '.join(bad)}")

    def code(self, short: str) -> str:
        """The bracketed form used in text output: `caa-permits-letsencrypt[forbids]`."""
        return f"{self.id}[{short}]"


def rule(id: str, title: str, *, codes: Mapping[str, str], asks: AsksFn | None = None) -> Callable[[CheckFn], Rule]:
    """Declare a rule: `@rule("dns-cname-target", "…", codes={...})` over `def check(ctx) -> Finding`."""

    def declare(fn: CheckFn) -> Rule:
        return Rule(id=id, title=title, check=fn, codes=dict(codes), asks=asks)

    return declare


def passed(code: str, message: str, **facts: Any) -> Finding:
    return Finding(Status.PASS, code, message, None, facts)


def warned(code: str, message: str, remediation: Remediation | None = None, **facts: Any) -> Finding:
    return Finding(Status.WARN, code, message, remediation, facts)


def failed(code: str, message: str, remediation: Remediation, **facts: Any) -> Finding:
    return Finding(Status.FAIL, code, message, remediation, facts)


def skipped(code: str, message: str, **facts: Any) -> Finding:
    return Finding(Status.SKIP, code, message, None, facts)


def errored(code: str, message: str, **facts: Any) -> Finding:
    return Finding(Status.ERROR, code, message, None, facts)
