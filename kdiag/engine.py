"""Running rules: concurrently, each isolated, each result stamped with its rule and timing.

Rules share the context's cached DNS layer, so running them in parallel costs about the longest chain of
round trips rather than their sum. One rule that raises becomes an `error` finding; the others still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from kdiag.context import Context
from kdiag.declare import Rule
from kdiag.model import CheckResult, Finding, Status

# Codes the engine itself may put on any rule's result; documented once in rules/README.md.
ENGINE_CODES = {
    "internal-error": "The rule raised an exception or returned something that is not a finding (a bug).",
}


def run(rules: Sequence[Rule], ctx: Context, on_result: Callable[[CheckResult], None] | None = None, *,
        pool: Executor | None = None, parallel: bool = True) -> list[CheckResult]:
    """Run every rule against `ctx`; results come back in the order of `rules`.

    `pool` is an executor the caller keeps for many runs (`kdiag serve` probes many names: a pool per diagnosis
    would spend more on starting threads than on the checks). Without one, a pool lives for this run. Rules
    never wait on other rules, only on the probes' own pools, so a shared, bounded pool cannot deadlock.
    `parallel=False` runs the rules one after another in this thread: for `kdiag scan`, which runs many
    diagnoses side by side already and finds most answers prefetched, so a hand-off per rule is pure cost.
    """
    if not rules:
        return []
    if not parallel:
        results = [run_one(r, ctx) for r in rules]
        if on_result is not None:
            for result in results:
                on_result(result)
        return results
    if pool is None:
        with ThreadPoolExecutor(max_workers=len(rules), thread_name_prefix="kdiag-rule") as own:
            return run(rules, ctx, on_result, pool=own)
    # The last rule runs in this thread, which would otherwise only wait.
    futures = [pool.submit(run_one, r, ctx) for r in rules[:-1]]
    last = run_one(rules[-1], ctx)
    results = [*(f.result() for f in futures), last]
    if on_result is not None:
        for result in results:
            on_result(result)
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
