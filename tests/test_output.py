"""Rendering a report: the JSON document (a contract for scripts and monitors) and the table (for people)."""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kdiag
from kdiag.model import CheckResult, DnsRecord, Finding, Remediation, Report, Status
from kdiag.output import FORMATS, SCHEMA_VERSION, render_json, render_table, simple_table

ANSI = re.compile(r"\x1b\[[0-9;]*m")
FIX = Remediation("Point my.example.com at the gateway",
                  records=(DnsRecord("my.example.com", "CNAME", "9e454bcfec.kongcloud.dev"),),
                  delete=(DnsRecord("my.example.com", "A", "192.0.2.1", 60),),
                  commands=(("kdiag", "domain", "my.example.com; rm -rf /"),))


def finding(status: Status, code: str = "x") -> Finding:
    return Finding(status, code, f"{status.value} message", FIX if status is Status.FAIL else None,
                   {"seen": [1, "a"], "n": None} if status is Status.PASS else {})


def report(*statuses: Status, **kw) -> Report:
    checks = [CheckResult(f"rule-{i}", f"Rule {i} passes", finding(s), i) for i, s in enumerate(statuses)]
    return Report(domain="my.example.com", started_at="2026-11-28T03:00:00.000Z", duration_ms=42, checks=checks,
                  **kw)


# The exit-code contract: 2 if any check fails; else 3 if any errored; else 1 if any warned; else 0.
def contract_exit(statuses) -> int:
    s = set(statuses)
    return 2 if Status.FAIL in s else 3 if Status.ERROR in s else 1 if Status.WARN in s else 0


def contract_status(statuses) -> str:
    s = set(statuses)
    for worst in (Status.FAIL, Status.ERROR, Status.WARN):
        if worst in s:
            return worst.value
    return "pass"


# --- JSON ------------------------------------------------------------------------------------------------------

def test_json_document_has_the_contract_fields_and_types():
    doc = json.loads(render_json(report(Status.PASS, Status.FAIL, target="9e454bcfec.kongcloud.dev",
                                        notes=("checking its host name",))))
    assert set(doc) == {"schema_version", "tool", "domain", "target", "started_at", "duration_ms", "status",
                        "exit_code", "notes", "checks"}
    assert doc["schema_version"] == SCHEMA_VERSION and re.fullmatch(r"\d+\.\d+", doc["schema_version"])
    assert doc["tool"] == {"name": "kdiag", "version": kdiag.__version__}
    assert doc["domain"] == "my.example.com" and doc["target"] == "9e454bcfec.kongcloud.dev"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["started_at"])
    assert doc["duration_ms"] == 42 and type(doc["duration_ms"]) is int
    assert (doc["status"], doc["exit_code"]) == ("fail", 2)
    assert doc["notes"] == ["checking its host name"]

    ok, bad = doc["checks"]
    for check in (ok, bad):
        assert list(check) == ["id", "title", "status", "code", "message", "remediation", "facts", "duration_ms"]
        assert all(type(check[k]) is str for k in ("id", "title", "status", "code", "message"))
        assert type(check["facts"]) is dict and type(check["duration_ms"]) is int
    assert ok == {"id": "rule-0", "title": "Rule 0 passes", "status": "pass", "code": "x", "message": "pass message",
                  "remediation": None, "facts": {"seen": [1, "a"], "n": None}, "duration_ms": 0}
    assert bad["remediation"] == {
        "summary": "Point my.example.com at the gateway",
        "records": ["my.example.com. 300 IN CNAME 9e454bcfec.kongcloud.dev."],
        "delete": ["my.example.com. 60 IN A 192.0.2.1"],
        "commands": ["kdiag domain 'my.example.com; rm -rf /'"],
    }


def test_json_without_target_or_notes_uses_null_and_an_empty_list():
    doc = json.loads(render_json(report(Status.PASS)))
    assert doc["target"] is None and doc["notes"] == []


def test_json_keeps_unicode_and_renders_odd_facts_as_text():
    from datetime import datetime

    when = datetime(2027, 3, 12, tzinfo=UTC)
    checks = [CheckResult("r", "T", Finding(Status.PASS, "ok", "straße ✓", facts={"not_after": when}), 1)]
    text = render_json(Report("xn--strae-oqa.de", "2026-11-28T03:00:00.000Z", 1, checks))
    assert "straße ✓" in text
    assert json.loads(text)["checks"][0]["facts"] == {"not_after": str(when)}


ALL_COMBINATIONS = [combo for n in range(4) for combo in itertools.combinations_with_replacement(Status, n)]


@pytest.mark.parametrize("statuses", ALL_COMBINATIONS, ids=lambda c: "+".join(s.value for s in c) or "none")
def test_status_and_exit_code_follow_the_contract_for_every_combination(statuses):
    r = report(*statuses)
    doc = json.loads(render_json(r))
    assert (doc["status"], doc["exit_code"]) == (contract_status(statuses), contract_exit(statuses))
    assert (r.status.value, r.exit_code) == (doc["status"], doc["exit_code"])
    assert [c["status"] for c in doc["checks"]] == [s.value for s in statuses]


@given(st.lists(st.sampled_from(list(Status)), max_size=12))
def test_status_and_exit_code_do_not_depend_on_order_or_count(statuses):
    r = report(*statuses)
    assert r.exit_code == contract_exit(statuses)
    assert r.status.value == contract_status(statuses)


# --- table -----------------------------------------------------------------------------------------------------

def test_table_lists_every_check_its_fix_and_a_summary_without_colour():
    text = render_table(report(Status.PASS, Status.FAIL, Status.WARN, target="9e454bcfec.kongcloud.dev"))
    assert not ANSI.search(text) and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "kdiag my.example.com → 9e454bcfec.kongcloud.dev"
    assert any(re.match(r"rule-1\s+FAIL\s+x\s+fail message$", line) for line in lines)
    assert "FIX rule-1[x]: Point my.example.com at the gateway" in lines
    assert "  add:     my.example.com. 300 IN CNAME 9e454bcfec.kongcloud.dev." in lines
    assert "  delete:  my.example.com. 60 IN A 192.0.2.1" in lines
    assert "  run:     kdiag domain 'my.example.com; rm -rf /'" in lines
    assert lines[-1] == "FAIL: 1 pass, 1 warn, 1 fail in 42 ms (exit 2)"


@pytest.mark.parametrize(("status", "colour"), [(Status.PASS, "32"), (Status.WARN, "33"), (Status.FAIL, "31"),
                                                (Status.ERROR, "35"), (Status.SKIP, "2")])
def test_table_colours_each_status_only_when_asked(status, colour):
    coloured = render_table(report(status), color=True)
    assert f"\x1b[{colour}m{status.value.upper()}\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == render_table(report(status), color=False)


def test_table_columns_line_up_with_colour_on():
    # tabulate must not count the escape codes as width: the rows line up as they do without colour.
    plain = render_table(report(Status.PASS, Status.ERROR, Status.SKIP))
    coloured = render_table(report(Status.PASS, Status.ERROR, Status.SKIP), color=True)
    assert ANSI.sub("", coloured) == plain


def test_table_never_passes_control_characters_from_dns_data_to_the_terminal():
    # A CAA value or TXT record can hold an ESC; echoed raw it would repaint the user's terminal.
    hostile = Finding(Status.WARN, "odd", 'CAA 0 issue "\x1b[2J\x1b]0;owned\x07letsencrypt.org"',
                      Remediation("Fix \x1b[31mthis\x1b[0m"))
    text = render_table(Report("my.example.com", "2026-11-28T03:00:00.000Z", 1,
                               [CheckResult("rule-0", "T", hostile, 1)]))
    assert "\x1b" not in text and "\x07" not in text
    assert "letsencrypt.org" in text


def test_formats_are_table_and_json():
    assert set(FORMATS) == {"table", "json"}


# -- the table layout: our own, kept identical to tabulate's "simple" (which it replaced for start-up time) --------

_WORD = st.text(alphabet=st.sampled_from("abcdefghij-.→é名\u0301 "), min_size=1, max_size=12).filter(
    lambda w: w.strip() and not unicodedata.combining(w.strip()[0]))
_CELL = st.lists(_WORD, min_size=1, max_size=3).map(lambda lines: "\n".join(f"x{w.strip()}" for w in lines))


@given(st.lists(st.tuples(_CELL, st.sampled_from(["PASS", "\x1b[31mFAIL\x1b[0m", "SKIP"]), _CELL, _CELL),
                min_size=1, max_size=6))
def test_the_table_is_laid_out_exactly_as_tabulate_simple(rows):
    from tabulate import tabulate

    headers = ("CHECK", "STATUS", "CODE", "MESSAGE")
    assert simple_table(headers, rows) == tabulate(rows, headers=headers, tablefmt="simple")
