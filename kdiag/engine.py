"""Running rules: concurrently, each isolated, each result stamped with its rule and timing.

Rules share the context's cached DNS layer, so running them in parallel costs about the longest chain of
round trips rather than their sum. One rule that raises becomes an `error` finding; the others still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from kdiag.context import Context
from kdiag.model import CheckResult, Finding, Status
from kdiag.declare import Rule

# Codes the engine itself may put on any rule's result; documented once in rules/README.md.
ENGINE_CODES = {
    "internal-error": "The rule raised an exception or returned something that is not a finding (a bug).",
}


def run(rules: Sequence[Rule], ctx: Context,
        on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run every rule against `ctx`; results come back in the order of `rules`."""
    if not rules:
        return []
    with ThreadPoolExecutor(max_workers=len(rules), thread_name_prefix="kdiag-rule") as pool:
        futures = [pool.submit(run_one, r, ctx) for r in rules]
        results = []
        for fut in futures:
            result = fut.result()
            if on_result is not None:
                on_result(result)
            results.append(result)
    return results


def run_one(rule: Rule, ctx: Context) -> CheckResult:
    started = time.monotonic()
    try:
        finding = rule.check(ctx)
        if not isinstance(finding, Finding):
            finding = _internal(f"rule returned {type(finding).__name__}, not a Finding")
        elif finding.code not in rule.codes:
            finding = _internal(f"rule emitted undeclared code {finding.code!r}: {finding.message}")
    except (Exception, SystemExit) as exc:  # one broken rule must not hide the others
        # (SystemExit too: a rule calling sys.exit(0) must not end kdiag with a green exit code)
        finding = _internal(f"rule crashed: {type(exc).__name__}: {exc}")
    duration = round((time.monotonic() - started) * 1000)
    return CheckResult(rule.id, rule.title, finding, duration)


def _internal(message: str) -> Finding:
    return Finding(Status.ERROR, "internal-error", f"{message} (a bug in kdiag or a plugin; please report it)")
