"""rules/ stays in step with the code: one page per built-in rule, every code documented, nothing extra."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdiag.engine import ENGINE_CODES
from kdiag.rules import BUILTIN

RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


def _codes_section(text: str) -> str:
    match = re.search(r"^## Codes\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "page has no '## Codes' section"
    return match.group(1)


@pytest.mark.parametrize("rule", BUILTIN, ids=[r.id for r in BUILTIN])
def test_every_rule_has_a_page_listing_exactly_its_codes(rule):
    page = RULES_DIR / f"{rule.id}.md"
    assert page.exists(), f"rules/{rule.id}.md is missing"
    text = page.read_text()
    assert text.startswith(f"# {rule.id}\n")
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", _codes_section(text), re.M))
    assert documented == set(rule.codes), f"documented {sorted(documented)} vs declared {sorted(rule.codes)}"
    for heading in ("## What it checks", "## Why it matters", "## Failing example", "## Generated fix"):
        assert heading in text


def test_no_page_without_a_rule():
    pages = {p.stem for p in RULES_DIR.glob("*.md")} - {"README"}
    assert pages == {r.id for r in BUILTIN}


def test_index_lists_every_rule_and_engine_code():
    index = (RULES_DIR / "README.md").read_text()
    for rule in BUILTIN:
        assert f"`{rule.id}`" in index and f"({rule.id}.md)" in index
    for code in ENGINE_CODES:
        assert f"`{code}`" in index
