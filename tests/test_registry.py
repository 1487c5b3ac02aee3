"""Finding rules: built-ins, plugins from the `kdiag.rules` entry-point group, and --only/--skip selection.

The in-process tests hand `load_rules` real `importlib.metadata.EntryPoint` objects whose modules are written to
a temporary directory, so `ep.load()` really imports them. The CLI tests install a real (tiny) plugin
distribution, a module plus a `.dist-info` with `entry_points.txt`, on PYTHONPATH of a `kdiag` subprocess, where
`importlib.metadata` discovers it the way it discovers a pip-installed plugin.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdiag.declare import Rule, passed, rule
from kdiag.errors import RuleLoadError, UsageError
from kdiag.registry import GROUP, load_rules, select, split_ids
from kdiag.rules import BUILTIN

BUILTIN_IDS = [r.id for r in BUILTIN]

_counter = itertools.count()


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """Write a module to a fresh directory on sys.path; returns its (unique) module name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"kdiag_test_plugin_{os.getpid()}_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.delitem(sys.modules, name, raising=False)  # forget it after the test
        return name

    return write


PLUGIN_SOURCE = """
    from kdiag import passed, rule

    @rule("acme-one", "The acme plugin's first check passes", codes={"ok": "Fine."})
    def one(ctx):
        return passed("ok", "fine")

    @rule("acme-two", "The acme plugin's second check passes", codes={"ok": "Fine."})
    def two(ctx):
        return passed("ok", "fine")

    RULES = [one, two]
    NOT_A_RULE = "acme-one"
    MIXED = [one, 42]
    NUMBER = 7
    CLASHES = rule("dns-cname-target", "Impostor", codes={"ok": "Fine."})(lambda ctx: passed("ok", "x"))
"""


def ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name, value, GROUP)


def ids(rules: list[Rule]) -> list[str]:
    return [r.id for r in rules]


# --- load_rules ---------------------------------------------------------------------------------------------


def test_builtins_come_first_and_in_their_listed_order():
    rules = load_rules(plugins=True, entry_points=[])
    assert ids(rules) == BUILTIN_IDS
    assert {r.origin for r in rules} == {"built in"}


def test_builtin_ids_are_unique_and_kebab_case():
    assert len(set(BUILTIN_IDS)) == len(BUILTIN_IDS)
    for r in BUILTIN:
        assert r.codes, f"{r.id} declares no codes"
        assert r.title and r.title[0].isupper() and not r.title.endswith(".")


def test_a_plugin_giving_one_rule_is_added_after_the_builtins_with_its_origin(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)
    rules = load_rules(entry_points=[ep("acme", f"{mod}:one")])
    assert ids(rules) == [*BUILTIN_IDS, "acme-one"]
    # A hand-built entry point has no distribution: the origin falls back to the entry point's name.
    assert rules[-1].origin == "acme"


def test_a_plugin_giving_a_list_adds_every_rule_in_order(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)
    rules = load_rules(entry_points=[ep("acme", f"{mod}:RULES")])
    assert ids(rules) == [*BUILTIN_IDS, "acme-one", "acme-two"]
    assert [r.origin for r in rules[-2:]] == ["acme", "acme"]


def test_the_origin_is_the_distribution_name_when_the_entry_point_has_one(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)

    class Dist:  # the only thing registry reads from an EntryPoint's distribution
        name = "kdiag-acme"

    point = ep("acme", f"{mod}:one")._for(Dist())  # what importlib.metadata does for discovered entry points
    assert load_rules(entry_points=[point])[-1].origin == "kdiag-acme"


def test_plugins_off_ignores_even_a_broken_plugin(plugin_module):
    rules = load_rules(plugins=False, entry_points=[ep("broken", "no_such_module_anywhere:RULES")])
    assert ids(rules) == BUILTIN_IDS


@pytest.mark.parametrize(("attr", "words"), [
    ("NOT_A_RULE", ["acme", "gave str", "not a kdiag Rule"]),
    ("NUMBER", ["acme", "gave int", "not a kdiag Rule or a list of Rules"]),
    ("MIXED", ["acme", "gave int", "not a kdiag Rule"]),
])
def test_a_plugin_giving_something_that_is_not_a_rule_stops_kdiag(plugin_module, attr, words):
    mod = plugin_module(PLUGIN_SOURCE)
    with pytest.raises(RuleLoadError) as info:
        load_rules(entry_points=[ep("acme", f"{mod}:{attr}")])
    for word in words:
        assert word in str(info.value)


def test_a_plugin_that_fails_to_import_stops_kdiag_and_says_how_to_go_on(plugin_module):
    mod = plugin_module("import kdiag_test_this_module_does_not_exist\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules(entry_points=[ep("acme", f"{mod}:RULES")])
    text = str(info.value)
    assert f"plugin acme ({mod}:RULES) failed to load" in text
    assert "ModuleNotFoundError" in text and "kdiag_test_this_module_does_not_exist" in text
    # --no-plugins belongs before the command (`kdiag domain x --no-plugins` is "No such option"): say so.
    assert "kdiag --no-plugins COMMAND" in text and "KDIAG_NO_PLUGINS=1" in text
    assert "\n" not in text


def test_a_plugin_that_raises_while_importing_stops_kdiag(plugin_module):
    mod = plugin_module("""
        from kdiag import rule
        BAD = rule("Not_Kebab", "x", codes={})(lambda ctx: None)
    """)
    with pytest.raises(RuleLoadError, match=r"plugin acme .*failed to load: ValueError: .*Not_Kebab"):
        load_rules(entry_points=[ep("acme", f"{mod}:BAD")])


def test_a_missing_attribute_stops_kdiag(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)
    with pytest.raises(RuleLoadError, match="failed to load: AttributeError"):
        load_rules(entry_points=[ep("acme", f"{mod}:NO_SUCH_NAME")])


def test_a_plugin_reusing_a_builtin_id_stops_kdiag_naming_both_sides(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)
    with pytest.raises(RuleLoadError) as info:
        load_rules(entry_points=[ep("acme", f"{mod}:CLASHES")])
    text = str(info.value)
    assert "acme" in text and "'dns-cname-target'" in text and "already taken by built in" in text


def test_two_plugins_with_the_same_id_stop_kdiag_naming_the_first(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)
    with pytest.raises(RuleLoadError, match=r"plugin second: rule id 'acme-one' is already taken by first"):
        load_rules(entry_points=[ep("first", f"{mod}:RULES"), ep("second", f"{mod}:one")])


def test_a_plugin_repeating_an_id_in_its_own_list_stops_kdiag(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE + "    TWICE = [one, one]\n")
    with pytest.raises(RuleLoadError, match="'acme-one' is already taken by acme"):
        load_rules(entry_points=[ep("acme", f"{mod}:TWICE")])


def test_a_plugin_rule_is_not_mutated_by_loading(plugin_module):
    mod = plugin_module(PLUGIN_SOURCE)
    load_rules(entry_points=[ep("acme", f"{mod}:one")])
    assert sys.modules[mod].one.origin == "built in"  # the registry stamps a copy, not the plugin's object


# --- select and split_ids -------------------------------------------------------------------------------------

def _toy(rule_id: str) -> Rule:
    return rule(rule_id, f"{rule_id} passes", codes={"ok": "Fine."})(lambda ctx: passed("ok", "fine"))


TOYS = [_toy("a-one"), _toy("b-two"), _toy("c-three")]


@pytest.mark.parametrize(("only", "skip", "expected"), [
    ((), (), ["a-one", "b-two", "c-three"]),
    (("c-three", "a-one"), (), ["a-one", "c-three"]),  # the registry's order, not the flag's
    ((), ("b-two",), ["a-one", "c-three"]),
    (("a-one", "b-two"), ("b-two",), ["a-one"]),
])
def test_select_applies_only_then_skip(only, skip, expected):
    assert ids(select(TOYS, only, skip)) == expected


@pytest.mark.parametrize(("only", "skip"), [(("a-one", "nope"), ()), ((), ("nope",)), (("A-ONE",), ())])
def test_select_rejects_an_unknown_id_and_lists_the_known_ones(only, skip):
    with pytest.raises(UsageError) as info:
        select(TOYS, only, skip)
    text = str(info.value)
    assert text.startswith("unknown rule id ")
    assert "known: a-one, b-two, c-three" in text


def test_select_rejects_a_selection_that_leaves_nothing():
    with pytest.raises(UsageError, match="left no rule to run"):
        select(TOYS, ("a-one",), ("a-one",))


def test_split_ids_accepts_commas_and_repeats():
    assert split_ids(["a-one,b-two", " c-three ", "", "a-one,,"]) == ["a-one", "b-two", "c-three", "a-one"]


# --- through the CLI, with a real plugin distribution -----------------------------------------------------------

PLUGIN_DIST = "kdiag-acme-probe"
PLUGIN_RULE = "acme-probe"


def install_plugin(root: Path, entry_value: str = "kdiag_acme_probe:RULES", module_source: str | None = None) -> Path:
    """A minimal installed distribution: a module, and a .dist-info that importlib.metadata discovers."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "kdiag_acme_probe.py").write_text(module_source or textwrap.dedent(f"""
        from kdiag import passed, rule

        @rule("{PLUGIN_RULE}", "The acme probe plugin ran", codes={{"ran": "It ran."}})
        def acme_probe(ctx):
            return passed("ran", "acme probe ran for " + ctx.domain, domain=ctx.domain)

        RULES = [acme_probe]
    """))
    info = root / "kdiag_acme_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN_DIST}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nacme = {entry_value}\n")
    return root


def run_kdiag(args: list[str], plugin_dir: Path | None, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KDIAG_NO_PLUGINS", "PYTHONPATH", "NO_COLOR")}
    if plugin_dir is not None:
        env["PYTHONPATH"] = str(plugin_dir)
    env.update(env_extra)
    proc = subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True, text=True, env=env,
                          timeout=30)
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("plugin") / "site")


def test_kdiag_rules_shows_a_plugin_with_its_distribution_as_origin(plugin_dir):
    proc = run_kdiag(["rules", "--format", "json"], plugin_dir)
    assert proc.returncode == 0, proc.stderr
    listed = {r["id"]: r for r in json.loads(proc.stdout)}
    assert list(listed)[: len(BUILTIN_IDS)] == BUILTIN_IDS
    assert listed[PLUGIN_RULE] == {"id": PLUGIN_RULE, "title": "The acme probe plugin ran",
                                   "codes": {"ran": "It ran."}, "origin": PLUGIN_DIST}


def test_kdiag_rules_table_shows_the_plugin_origin_and_kdiag_no_plugins_0_keeps_plugins(plugin_dir):
    proc = run_kdiag(["rules"], plugin_dir, KDIAG_NO_PLUGINS="0")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith(PLUGIN_RULE))
    assert row.split()[-1] == PLUGIN_DIST and "ran" in row


@pytest.mark.parametrize(("args", "env"), [
    (["--no-plugins", "rules"], {}),
    (["rules"], {"KDIAG_NO_PLUGINS": "1"}),
])
def test_no_plugins_hides_the_plugin(plugin_dir, args, env):
    proc = run_kdiag(args, plugin_dir, **env)
    assert proc.returncode == 0, proc.stderr
    assert PLUGIN_RULE not in proc.stdout and PLUGIN_DIST not in proc.stdout
    assert all(rule_id in proc.stdout for rule_id in BUILTIN_IDS)


def test_a_plugin_rule_runs_in_kdiag_domain(plugin_dir):
    # The plugin's rule asks no DNS question, so the (loopback, unused) name server is never queried.
    proc = run_kdiag(["domain", "my.example.com", "--nameserver", "127.0.0.1:9", "--only", PLUGIN_RULE,
                      "--format", "json"], plugin_dir)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(c["id"], c["status"], c["code"]) for c in doc["checks"]] == [(PLUGIN_RULE, "pass", "ran")]
    assert doc["checks"][0]["facts"] == {"domain": "my.example.com"}


def test_a_broken_plugin_stops_kdiag_with_one_line_and_no_plugins_gets_past_it(tmp_path):
    broken = install_plugin(tmp_path / "site", module_source="raise RuntimeError('acme is broken')\n")
    proc = run_kdiag(["rules"], broken)
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"kdiag: error: plugin {PLUGIN_DIST} (kdiag_acme_probe:RULES) failed to load: "
                                  "RuntimeError: acme is broken")
    assert run_kdiag(["rules"], broken, KDIAG_NO_PLUGINS="1").returncode == 0
