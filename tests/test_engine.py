"""The engine: rules run concurrently and isolated, over one shared cached DNS layer.

Toy rules are declared with `kdiag.declare.rule`, as a plugin author would. The concurrency tests use the real
`Dns` layer against the in-process fake resolver on loopback, so "shared cached lookup" means real UDP.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from kdiag.context import Context
from kdiag.declare import Rule, errored, failed, passed, rule, skipped, warned
from kdiag.engine import ENGINE_CODES, run, run_one
from kdiag.model import CheckResult, DnsRecord, Finding, Remediation, Status
from kdiag.probes.dns import Dns, Nameserver
from tests.fakedns import FakeDns

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
UNUSED_NS = Nameserver("127.0.0.1", 9)  # for rules that never ask DNS: nothing is ever sent there

CODES = {"ok": "Fine.", "bad": "Broken.", "meh": "Odd.", "na": "Not applicable."}


def toy(rule_id: str, body, codes=CODES) -> Rule:  # noqa: ANN001 - any callable over a Context
    return rule(rule_id, f"The {rule_id} toy passes", codes=codes)(body)


@pytest.fixture
def ctx():
    with Dns([UNUSED_NS], timeout=0.2) as dns:
        yield Context(domain="my.example.com", dns=dns)


FIX = Remediation("Point it at the gateway", records=(DnsRecord("my.example.com", "CNAME", "gw.kongcloud.dev"),))


def test_results_keep_the_rules_order_with_id_title_and_the_rules_finding(ctx):
    rules = [
        toy("t-pass", lambda c: passed("ok", f"{c.domain} is fine", seen=c.domain)),
        toy("t-warn", lambda c: warned("meh", "odd")),
        toy("t-fail", lambda c: failed("bad", "broken", FIX)),
        toy("t-skip", lambda c: skipped("na", "not applicable")),
        toy("t-error", lambda c: errored("bad", "could not tell")),
    ]
    results = run(rules, ctx)
    assert [(r.id, r.title, r.status, r.finding.code) for r in results] == [
        ("t-pass", "The t-pass toy passes", Status.PASS, "ok"),
        ("t-warn", "The t-warn toy passes", Status.WARN, "meh"),
        ("t-fail", "The t-fail toy passes", Status.FAIL, "bad"),
        ("t-skip", "The t-skip toy passes", Status.SKIP, "na"),
        ("t-error", "The t-error toy passes", Status.ERROR, "bad"),
    ]
    assert results[0].finding.facts == {"seen": "my.example.com"}
    assert results[2].finding.remediation is FIX
    assert all(isinstance(r.duration_ms, int) and r.duration_ms >= 0 for r in results)


def test_no_rules_is_no_results(ctx):
    assert run([], ctx) == []


def test_on_result_sees_every_result_in_order(ctx):
    seen: list[CheckResult] = []
    rules = [toy(f"t-{i}", lambda c: passed("ok", "fine")) for i in range(4)]
    results = run(rules, ctx, on_result=seen.append)
    assert seen == results


def test_a_rule_that_raises_becomes_an_error_and_the_others_still_run(ctx):
    def boom(c):
        raise KeyError("no-such-thing")

    results = run([toy("t-before", lambda c: passed("ok", "fine")), toy("t-boom", boom),
                   toy("t-after", lambda c: passed("ok", "fine"))], ctx)
    assert [r.status for r in results] == [Status.PASS, Status.ERROR, Status.PASS]
    crashed = results[1].finding
    assert crashed.code == "internal-error" and crashed.code in ENGINE_CODES
    assert "KeyError" in crashed.message and "no-such-thing" in crashed.message
    assert "please report it" in crashed.message
    assert crashed.remediation is None


def test_a_rule_that_calls_sys_exit_becomes_an_error_instead_of_ending_kdiag(ctx):
    # A plugin calling sys.exit(0) must not turn into a green run (or end the process).
    results = run([toy("t-exit", lambda c: sys.exit(0)), toy("t-after", lambda c: passed("ok", "fine"))], ctx)
    assert [r.status for r in results] == [Status.ERROR, Status.PASS]
    assert "SystemExit" in results[0].finding.message


@pytest.mark.parametrize(("returned", "words"), [
    (None, "rule returned NoneType, not a Finding"),
    ("pass", "rule returned str, not a Finding"),
    (Status.PASS, "rule returned Status, not a Finding"),
])
def test_a_rule_returning_a_non_finding_becomes_an_error(ctx, returned, words):
    result = run_one(toy("t-odd", lambda c: returned), ctx)
    assert (result.status, result.finding.code) == (Status.ERROR, "internal-error")
    assert words in result.finding.message


def test_a_rule_emitting_an_undeclared_code_becomes_an_error_naming_the_code(ctx):
    result = run_one(toy("t-typo", lambda c: passed("okay", "all good"), codes={"ok": "Fine."}), ctx)
    assert (result.status, result.finding.code) == (Status.ERROR, "internal-error")
    assert "undeclared code 'okay'" in result.finding.message
    assert "all good" in result.finding.message  # what the rule meant to say is kept


def test_a_fail_without_remediation_raised_inside_a_rule_becomes_an_error(ctx):
    from kdiag.model import Finding

    result = run_one(toy("t-nofix", lambda c: Finding(Status.FAIL, "bad", "broken")), ctx)
    assert result.status is Status.ERROR
    assert "needs a remediation" in result.finding.message


def test_sequential_runs_every_rule_in_the_calling_thread_with_the_same_isolation(ctx):
    # `kdiag scan` runs a name's rules one after another (its names run side by side instead).
    import threading

    threads = []

    def where(c):  # noqa: ANN001, ANN202
        threads.append(threading.get_ident())
        return passed("ok", "here")

    rules = [toy("t-a", where), toy("t-crash", lambda c: 1 / 0), toy("t-b", where)]
    seen = []
    results = run(rules, ctx, seen.append, parallel=False)
    assert [r.status for r in results] == [Status.PASS, Status.ERROR, Status.PASS]
    assert "ZeroDivisionError" in results[1].finding.message
    assert seen == results
    assert threads == [threading.get_ident()] * 2


def test_duration_is_measured_per_rule(ctx):
    result = run_one(toy("t-slow", lambda c: (time.sleep(0.05), passed("ok", "fine"))[1]), ctx)
    assert 45 <= result.duration_ms < 1000


def test_rules_run_concurrently_and_share_one_cached_lookup():
    """Every rule waits at a barrier that only opens when all of them are running at once, then asks the same
    question; the (slow) fake resolver must see it once, and every rule gets the same answer."""
    n = 6
    barrier = threading.Barrier(n, timeout=5)
    answers = []

    def asks(c: Context) -> Finding:
        barrier.wait()  # BrokenBarrierError (so an error finding) if the rules do not run at the same time
        answer = c.dns.lookup("my.example.com", "A")
        answers.append(answer)
        return passed("ok", answer.rcode, cname=answer.canonical_name)

    rules = [toy(f"t-concurrent-{i}", asks) for i in range(n)]
    with FakeDns(ZONES, delay=0.3) as fake, Dns([Nameserver(*fake.address)], timeout=5) as dns:
        started = time.monotonic()
        results = run(rules, Context(domain="my.example.com", dns=dns))
        elapsed = time.monotonic() - started
        stats = dns.stats
    assert [r.status for r in results] == [Status.PASS] * n, [r.finding.message for r in results]
    assert {r.finding.facts["cname"] for r in results} == {"9e454bcfec.kongcloud.dev"}
    assert stats.queries == 1 and stats.cache_hits == n - 1
    assert all(a is answers[0] for a in answers)
    # One round trip of 0.3 s, not six; loose, since the barrier already proves the overlap.
    assert elapsed < 0.3 * n - 0.3


def test_concurrent_lookups_of_different_questions_overlap():
    # Given a resolver that takes 0.4 s per answer, three rules asking three different questions
    def asking(rdtype: str):
        def check(c: Context) -> Finding:
            started = time.monotonic()
            answer = c.dns.lookup("my.example.com", rdtype)
            spans.append((started, time.monotonic()))
            return passed("ok", answer.rcode)
        return check

    spans: list[tuple[float, float]] = []
    rules = [toy(f"t-{t.lower()}", asking(t)) for t in ("A", "AAAA", "CAA")]
    with FakeDns(ZONES, delay=0.4) as fake, Dns([Nameserver(*fake.address)], timeout=5) as dns:
        results = run(rules, Context(domain="my.example.com", dns=dns))
        assert dns.stats.queries == 3
    assert [r.status for r in results] == [Status.PASS] * 3
    # Then every lookup started before any finished: they were in flight together
    assert max(s for s, _ in spans) < min(e for _, e in spans)


# --- declaring rules ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["", "Caps-Id", "under_score", "-lead", "trail-", "double--dash", "sp ace"])
def test_rule_ids_must_be_kebab_case(bad_id):
    with pytest.raises(ValueError, match="kebab-case"):
        rule(bad_id, "Title", codes={"ok": "Fine."})(lambda c: passed("ok", "x"))


def test_rule_codes_must_be_kebab_case():
    with pytest.raises(ValueError, match="codes must be kebab-case: Bad_Code"):
        rule("t-codes", "Title", codes={"ok": "Fine.", "Bad_Code": "No."})(lambda c: passed("ok", "x"))


def test_rule_declaration_keeps_the_function_and_a_copy_of_the_codes():
    codes = {"ok": "Fine."}

    def check(c):
        return passed("ok", "x")

    declared = rule("t-decl", "Title", codes=codes)(check)
    codes["late"] = "Added after declaring."
    assert declared.check is check and dict(declared.codes) == {"ok": "Fine."}
    assert declared.origin == "built in" and declared.code("ok") == "t-decl[ok]"


def test_the_finding_helpers_set_status_and_facts():
    assert passed("ok", "m", a=1) == Finding(Status.PASS, "ok", "m", None, {"a": 1})
    assert warned("meh", "m") == Finding(Status.WARN, "meh", "m")
    assert failed("bad", "m", FIX, b=[1]) == Finding(Status.FAIL, "bad", "m", FIX, {"b": [1]})
    assert skipped("na", "m").status is Status.SKIP
    assert errored("bad", "m").status is Status.ERROR
