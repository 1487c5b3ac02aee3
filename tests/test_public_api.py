"""The names a plugin author imports from `kdiag`: listed, sorted, importable, and what they say they are."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import kdiag
from kdiag.declare import Rule


def test_all_is_sorted_and_unique():
    assert kdiag.__all__ == sorted(set(kdiag.__all__))


def test_every_public_name_is_importable():
    for name in kdiag.__all__:
        assert getattr(kdiag, name) is not None, name
    namespace: dict[str, object] = {}
    exec(f"from kdiag import {', '.join(kdiag.__all__)}", namespace)  # noqa: S102 - the spelling users write
    assert set(kdiag.__all__) <= set(namespace)


def test_all_lists_everything_the_package_exports_lazily():
    lazy = set(kdiag._LAZY)  # what `kdiag.__getattr__` serves
    assert lazy | {"__version__"} == set(kdiag.__all__)


def test_unknown_names_are_attribute_errors():
    try:
        kdiag.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("kdiag.no_such_name did not raise")


def test_the_rule_decorator_works_after_the_rules_are_imported():
    # By the time plugins load, kdiag's own modules are imported; `from kdiag import rule` must still give the
    # decorator (a submodule named `rule` once shadowed it).
    import kdiag.declare  # noqa: F401
    import kdiag.rules  # noqa: F401
    from kdiag import passed, rule

    @rule("api-check", "The public API works", codes={"ok": "Fine."})
    def check(ctx):  # noqa: ANN001
        return passed("ok", "fine")

    assert isinstance(check, Rule) and check.id == "api-check" and dict(check.codes) == {"ok": "Fine."}


def test_a_plugin_module_written_against_the_public_api_imports_in_a_fresh_interpreter():
    source = textwrap.dedent("""
        from kdiag import Finding, Remediation, DnsRecord, Rule, Status, failed, passed, rule
        import kdiag.registry  # what kdiag itself imports before it loads plugins

        from kdiag import rule as rule_again

        @rule_again("fresh-check", "Declared in a fresh interpreter", codes={"bad": "Broken."})
        def check(ctx):
            return failed("bad", "x", Remediation("fix", records=(DnsRecord("a.example", "A", "192.0.2.1"),)))

        assert isinstance(check, Rule)
        assert rule("other-check", "T", codes={})(lambda ctx: None).id == "other-check"
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", "")


def test_version_is_a_release_string():
    parts = kdiag.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)
