"""Finding the rules: the built-in list plus plugins from the `kdiag.rules` entry-point group.

A plugin's entry point names a `Rule` or an iterable of `Rule`s (`kdiag_acme:RULES`). A plugin that fails to
import, gives something that is not a Rule, or reuses an id stops kdiag with a clear error: silently running
fewer checks would turn a broken plugin into a green monitor.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from kdiag.declare import Rule
from kdiag.errors import RuleLoadError, UsageError

if TYPE_CHECKING:
    import importlib.metadata

GROUP = "kdiag.rules"


def load_rules(*, plugins: bool = True,
               entry_points: Iterable[importlib.metadata.EntryPoint] | None = None) -> list[Rule]:
    """Built-in rules, then each plugin's in entry-point order. `entry_points` is injectable for tests."""
    from kdiag.rules import BUILTIN

    sources: list[tuple[str, Iterable[object]]] = [("built in", BUILTIN)]
    if plugins:
        if entry_points is None:
            import importlib.metadata  # here: ~10 ms that a run without plugins (--no-plugins) need not pay

            entry_points = importlib.metadata.entry_points(group=GROUP)
        eps = entry_points
        for ep in eps:
            origin = _origin(ep)
            try:
                obj = ep.load()
            except Exception as exc:
                raise RuleLoadError(f"plugin {origin} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
                                    " (run without plugins: kdiag --no-plugins COMMAND …, or KDIAG_NO_PLUGINS=1)"
                                    ) from None
            if isinstance(obj, Rule):
                items: Iterable[object] = (obj,)
            elif isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
                items = tuple(obj)
            else:
                raise RuleLoadError(f"plugin {origin} ({ep.value}) gave {type(obj).__name__}, "
                                    "not a kdiag Rule or a list of Rules")
            sources.append((origin, items))
    rules: dict[str, Rule] = {}
    for origin, items in sources:
        for item in items:
            if not isinstance(item, Rule):
                raise RuleLoadError(f"plugin {origin} gave {type(item).__name__}, not a kdiag Rule")
            if item.id in rules:
                taken_by = rules[item.id].origin
                raise RuleLoadError(f"plugin {origin}: rule id {item.id!r} is already taken by {taken_by}")
            rules[item.id] = item if origin == "built in" else _with_origin(item, origin)
    return list(rules.values())


def select(rules: Sequence[Rule], only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Rule]:
    """Apply --only and --skip; an unknown id is a usage error (a typo must not silently select nothing)."""
    known = {r.id for r in rules}
    unknown = sorted({i for i in (*only, *skip) if i not in known})
    if unknown:
        raise UsageError(f"unknown rule id {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    chosen = [r for r in rules if (not only or r.id in only) and r.id not in skip]
    if not chosen:
        raise UsageError("--only/--skip left no rule to run")
    return chosen


def split_ids(values: Sequence[str]) -> list[str]:
    """`--only a,b --only c` → ['a', 'b', 'c']."""
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else ep.name


def _with_origin(rule: Rule, origin: str) -> Rule:
    from dataclasses import replace

    return replace(rule, origin=origin)
