"""Rendering a `Report`: a table for people, a stable JSON document for scripts and monitoring.

Renderers only know `Report` and `CheckResult`; they never branch on which rule produced a result.
The JSON document is a contract (README "JSON output"): within a major `schema_version` fields may be added,
never renamed or removed.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from kdiag import __version__
from kdiag.model import CheckResult, Report, Status

SCHEMA_VERSION = "1.0"

_COLOURS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31", Status.ERROR: "35", Status.SKIP: "2"}


def report_dict(report: Report) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "kdiag", "version": __version__},
        "domain": report.domain,
        "target": report.target,
        "started_at": report.started_at,
        "duration_ms": report.duration_ms,
        "status": report.status.value,
        "exit_code": report.exit_code,
        "notes": list(report.notes),
        "checks": [check_dict(c) for c in report.checks],
    }


def check_dict(check: CheckResult) -> dict[str, Any]:
    f = check.finding
    return {
        "id": check.id,
        "title": check.title,
        "status": f.status.value,
        "code": f.code,
        "message": f.message,
        "remediation": f.remediation.as_dict() if f.remediation else None,
        "facts": dict(f.facts),
        "duration_ms": check.duration_ms,
    }


def render_json(report: Report, *, color: bool = False) -> str:
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False, default=str)


def render_table(report: Report, *, color: bool = False) -> str:
    def paint(status: Status, text: str) -> str:
        return f"\x1b[{_COLOURS[status]}m{text}\x1b[0m" if color else text

    # Wrap messages ourselves: tabulate's wrapper breaks at hyphens, which splits host names mid-word and
    # makes them impossible to copy.
    fixed = max((len(c.id) for c in report.checks), default=5) + len("STATUS") + \
        max((len(c.finding.code) for c in report.checks), default=4) + 8
    width = max(50, shutil.get_terminal_size((120, 24)).columns - fixed)
    rows = [(c.id, paint(c.status, c.status.value.upper()), _printable(c.finding.code),
             _wrap(_printable(c.finding.message), width)) for c in report.checks]
    lines = [f"kdiag {report.domain}" + (f" → {report.target}" if report.target else ""), ""]
    lines.append(simple_table(("CHECK", "STATUS", "CODE", "MESSAGE"), rows))
    fixes = [c for c in report.checks if c.finding.remediation is not None]
    for c in fixes:
        rem = c.finding.remediation
        assert rem is not None
        lines += ["", f"{paint(c.status, 'FIX')} {c.id}[{_printable(c.finding.code)}]: {_printable(rem.summary)}"]
        lines += [f"  add:     {r.zone_line()}" for r in rem.records]
        lines += [f"  delete:  {r.zone_line()}" for r in rem.delete]
        lines += [f"  run:     {_printable(cmd)}" for cmd in rem.command_lines()]
    counts = {s: sum(1 for c in report.checks if c.status is s) for s in Status}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    lines += ["", f"{paint(report.status, report.status.value.upper())}: {summary} "
              f"in {report.duration_ms} ms (exit {report.exit_code})"]
    return "\n".join(lines)


# C0 and C1 controls other than tab and newline: DNS data (a CAA value, a TXT record) can carry an ESC that,
# printed raw, would repaint the user's terminal. The table shows them escaped; JSON escapes them anyway.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def simple_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Text columns laid out as tabulate's "simple" format lays them out (tests/test_output.py compares the two).

    Our own because every `kdiag domain` prints one, and importing tabulate (and wcwidth) cost about 20 ms of a
    run's start-up. Cells may hold several lines and ANSI colours; East Asian wide characters count double.
    """
    cells = [[cell.strip().split("\n") for cell in row] for row in rows]
    widths = [max([_width(h) + 2, *(_width(line) for row in cells for line in row[i])]) for i, h in enumerate(headers)]

    def line(parts: list[str]) -> str:
        return "  ".join(p + " " * (w - _width(p)) for p, w in zip(parts, widths, strict=True)).rstrip()

    out = [line(list(headers)), "  ".join("-" * w for w in widths)]
    for row in cells:
        for k in range(max(len(c) for c in row)):
            out.append(line([c[k] if k < len(c) else "" for c in row]))
    return "\n".join(out)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _width(text: str) -> int:
    """Columns `text` takes on a terminal: colours take none, wide characters two, combining marks none."""
    import unicodedata

    text = _ANSI.sub("", text)
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def _printable(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)) or text


FORMATS: dict[str, Callable[..., str]] = {"table": render_table, "json": render_json}
