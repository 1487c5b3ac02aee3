"""Monitoring output: the Monitoring Plugins (Nagios) line and Prometheus text exposition of a `Report`.

Both renderers are pure functions of a `Report` (plus the threshold kdiag judged with), so they can be tested
without a network and give byte-identical output for identical reports. Their names are a contract, like the
JSON document's fields: labels and metrics may be added, never renamed or removed.

Nagios (`--format nagios`), one line on stdout, the state taken from the exit code (0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN):

    KDIAG CRITICAL - my.example.com: fail: caa-permits-letsencrypt[forbids] | 'time'=0.041s;;;0 ...

Perfdata (Monitoring Plugins guidelines, `'label'=value[UOM];[warn];[crit];[min];[max]`, trailing empty fields
dropped, `U` for a value that could not be determined):

* `'time'`: the whole diagnosis, seconds.
* `'dns_time'`: how long the dns-cname-target check (the name's CNAME/A/AAAA lookups) took, seconds.
* `'tls_time'`: how long the tls-certificate check took (address lookup, TCP connect, TLS handshake and the
  offline verification), seconds; `U` when it dialled nothing (skipped, or kdiag's resolver was silent).
* `'cert_days_left'`: days until the served certificate's notAfter, with the thresholds tls-certificate
  judges by: warn `W:` (fewer than --expiry-warn-days days left, or past the renewal point of a certificate
  whose whole lifetime is shorter) and crit `0:` (expired). `U` when no certificate was seen.

A label is emitted only when its check was selected (`--only`/`--skip`), so a graph never mixes "not run"
with "unknown".

Prometheus (`--format prometheus`), in blackbox_exporter's naming style, no timestamps (the node_exporter
textfile collector refuses them), every sample labelled with `domain` so files for several domains can sit in
one textfile directory:

* `probe_success` 1 when no check failed or errored (warnings still succeed), else 0.
* `probe_duration_seconds`.
* `probe_ssl_earliest_cert_expiry`: Unix time of the served leaf certificate's notAfter (the report carries
  the leaf's dates only); absent when no certificate was seen.
* `kdiag_check_status{rule,code}`: 0 pass or skip, 1 warn, 2 fail, 3 error, mirroring the exit codes.
* `kdiag_check_duration_seconds{rule}`, `kdiag_exit_code`, `kdiag_last_run_timestamp_seconds` (when the
  diagnosis finished; for staleness alerts on textfile output).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kdiag.model import EXIT_FAIL, EXIT_OK, EXIT_UNKNOWN, EXIT_WARN, CheckResult, Report, Status, exit_code

# The rules whose results feed perfdata and certificate metrics. Renderers otherwise never look at rule ids;
# these are the documented exceptions (the certificate's dates and the lookup/handshake times are facts only
# those checks have).
DNS_RULE = "dns-cname-target"
CERT_RULE = "tls-certificate"

NAGIOS_STATES = {EXIT_OK: "OK", EXIT_WARN: "WARNING", EXIT_FAIL: "CRITICAL", EXIT_UNKNOWN: "UNKNOWN"}
# "probably less than 80 characters" (Monitoring Plugins developer guidelines) for the part before the '|'.
NAGIOS_FIRST_PART = 80

# Content type of the text exposition format, for HTTP answers.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- Nagios ------------------------------------------------------------------------------------------------


def render_nagios(report: Report, *, expiry_warn_days: int = 14, color: bool = False) -> str:
    """`KDIAG <STATE> - <summary> | <perfdata>`: one line (no trailing newline; click.echo adds it).

    `expiry_warn_days` is the threshold tls-certificate judged with (--expiry-warn-days); `color` is
    accepted so every format has the same call signature, and ignored.
    """
    state = NAGIOS_STATES[report.exit_code]
    head = f"KDIAG {state} - "
    summary = _nagios_summary(report, NAGIOS_FIRST_PART - len(head))
    perf = " ".join(p.text() for p in perfdata(report, expiry_warn_days=expiry_warn_days))
    return f"{head}{summary}" + (f" | {perf}" if perf else "")


@dataclass(frozen=True)
class Perf:
    """One perfdata item. `value` None renders as `U`; thresholds are range expressions, already formatted."""

    label: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: float | None = None
    max: float | None = None

    def text(self) -> str:
        value = "U" if self.value is None else _perf_number(self.value) + self.uom
        fields = [value, self.warn, self.crit,
                  "" if self.min is None else _perf_number(self.min),
                  "" if self.max is None else _perf_number(self.max)]
        while len(fields) > 1 and fields[-1] == "":
            fields.pop()  # "Trailing unfilled semicolons can be dropped"
        # A label may hold anything but '=' and "'"; it is always quoted, a quote inside doubled.
        label = self.label.replace("'", "''").replace("=", "_")
        return f"'{label}'=" + ";".join(fields)


def perfdata(report: Report, *, expiry_warn_days: int = 14) -> list[Perf]:
    """The perfdata items for a report (see the module docstring for what each one means)."""
    items = [Perf("time", _seconds(report.duration_ms), "s", min=0)]
    checks = {c.id: c for c in report.checks}
    dns_check = checks.get(DNS_RULE)
    if dns_check is not None:
        items.append(Perf("dns_time", _seconds(dns_check.duration_ms), "s", min=0))
    cert_check = checks.get(CERT_RULE)
    if cert_check is not None:
        dialled = cert_check.status not in (Status.SKIP, Status.ERROR)
        items.append(Perf("tls_time", _seconds(cert_check.duration_ms) if dialled else None, "s", min=0))
        facts = cert_check.finding.facts
        days: Any = facts.get("days_left")
        warn = _warn_days(facts, expiry_warn_days)
        # No min: an expired certificate's days left are negative, and that is worth graphing.
        items.append(Perf("cert_days_left", float(days) if _is_number(days) else None, "d",
                          warn=f"{_perf_number(warn)}:", crit="0:"))
    return items


def _warn_days(facts: Mapping[str, Any], expiry_warn_days: int) -> float:
    """The days-left threshold tls-certificate warns below: --expiry-warn-days, or for a certificate whose
    whole lifetime is no longer than that (6-day short-lived ones), the time left after its renewal point."""
    from kdiag.letsencrypt import RENEW_AT_FRACTION

    try:
        lifetime = (_parse_time(str(facts["not_after"])) - _parse_time(str(facts["not_before"]))).total_seconds()
    except (KeyError, ValueError):
        return float(expiry_warn_days)
    lifetime_days = lifetime / 86400
    if lifetime_days <= expiry_warn_days:
        return round(lifetime_days * (1 - RENEW_AT_FRACTION), 1)
    return float(expiry_warn_days)


def _nagios_summary(report: Report, room: int) -> str:
    """`<domain>: fail: a[x], b[y]; warn: c[z]`, worst first, shortened to fit `room` when it can."""
    domain = _plain_text(report.domain)
    if report.exit_code == EXIT_OK:
        counts = {s: sum(1 for c in report.checks if c.status is s) for s in (Status.PASS, Status.SKIP)}
        text = f"{counts[Status.PASS]} checks passed"
        if counts[Status.SKIP]:
            text += f", {counts[Status.SKIP]} skipped"
        return f"{domain}: {text}"
    # Grouped in exit-code order of badness: what made the state CRITICAL comes first.
    order = (Status.FAIL, Status.ERROR, Status.WARN)
    groups = [(s, [f"{c.id}[{c.finding.code}]" for c in report.checks if c.status is s]) for s in order]
    items = [(s, _plain_text(label)) for s, labels in groups for label in labels]

    def compose(shown: int) -> str:
        parts: list[str] = []
        for status in order:
            names = [label for s, label in items[:shown] if s is status]
            if names:
                parts.append(f"{status.value}: {', '.join(names)}")
        more = len(items) - shown
        return f"{domain}: {'; '.join(parts)}" + (f" (+{more} more)" if more else "")

    # Show as many as fit; always at least one, so the line names what is wrong even for a long domain.
    shown = len(items)
    while shown > 1 and len(compose(shown)) > room:
        shown -= 1
    return compose(shown)


# Nothing in the line may end it early: a '|' starts perfdata, a newline starts long output.
_NAGIOS_UNSAFE = re.compile(r"[|\x00-\x1f\x7f-\x9f]")


def _plain_text(text: str) -> str:
    return _NAGIOS_UNSAFE.sub("?", text)


def _perf_number(value: float) -> str:
    # No scientific notation (the draft guidelines recommend plain SI numbers); at most 3 decimals.
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# -- Prometheus --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass
class Family:
    """One metric name: its HELP and TYPE lines once, then its samples (exposition format 0.0.4)."""

    name: str
    type: str  # gauge | counter | summary | untyped
    help: str
    samples: list[Sample] = field(default_factory=list)
    # For a summary: extra series named <name>_sum and <name>_count, as (suffix, labels, value).
    suffixed: list[tuple[str, tuple[tuple[str, str], ...], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append(Sample(tuple(labels.items()), value))
        return self


# What each metric means, shared by the renderer and `kdiag serve`.
HELP = {
    "probe_success": "1 when no check failed or errored (warnings still succeed), else 0",
    "probe_duration_seconds": "How long the diagnosis took, in seconds",
    "probe_ssl_earliest_cert_expiry": "Unix time the served leaf certificate expires (its notAfter)",
    "kdiag_check_status": "Outcome of each check: 0 pass or skip, 1 warn, 2 fail, 3 error (mirrors the exit codes)",
    "kdiag_check_duration_seconds": "How long each check took, in seconds",
    "kdiag_exit_code": "kdiag's exit code for the diagnosis: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
    "kdiag_last_run_timestamp_seconds": "Unix time the diagnosis finished",
}


def report_families(report: Report) -> list[Family]:
    """The metric families for one diagnosis, in a fixed order."""
    dom = {"domain": report.domain}
    families = [
        Family("probe_success", "gauge", HELP["probe_success"]).add(probe_success(report), **dom),
        Family("probe_duration_seconds", "gauge", HELP["probe_duration_seconds"])
        .add(_seconds(report.duration_ms), **dom),
    ]
    expiry = cert_expiry(report)
    if expiry is not None:
        families.append(Family("probe_ssl_earliest_cert_expiry", "gauge", HELP["probe_ssl_earliest_cert_expiry"])
                        .add(expiry, **dom))
    status = Family("kdiag_check_status", "gauge", HELP["kdiag_check_status"])
    duration = Family("kdiag_check_duration_seconds", "gauge", HELP["kdiag_check_duration_seconds"])
    for check in report.checks:
        status.add(check_status_value(check), **dom, rule=check.id, code=check.finding.code)
        duration.add(_seconds(check.duration_ms), **dom, rule=check.id)
    families += [
        status,
        duration,
        Family("kdiag_exit_code", "gauge", HELP["kdiag_exit_code"]).add(report.exit_code, **dom),
        Family("kdiag_last_run_timestamp_seconds", "gauge", HELP["kdiag_last_run_timestamp_seconds"])
        .add(finished_at(report), **dom),
    ]
    return families


def render_prometheus(report: Report, *, color: bool = False, **_: Any) -> str:
    """The report as Prometheus text exposition, ending in a newline. `color` and other keywords are accepted
    so every format has the same call signature, and ignored."""
    return exposition(report_families(report))


def probe_success(report: Report) -> int:
    return 0 if report.status in (Status.FAIL, Status.ERROR) else 1


def check_status_value(check: CheckResult) -> int:
    """0 pass/skip, 1 warn, 2 fail, 3 error: the exit code this check alone would give."""
    return exit_code([check.status])


def cert_expiry(report: Report) -> int | None:
    """Unix time of the certificate's notAfter, when tls-certificate ran and saw a certificate."""
    for check in report.checks:
        if check.id == CERT_RULE and "not_after" in check.finding.facts:
            try:
                return int(_parse_time(str(check.finding.facts["not_after"])).timestamp())
            except ValueError:
                return None
    return None


def finished_at(report: Report) -> float:
    return round(_parse_time(report.started_at).timestamp() + report.duration_ms / 1000, 3)


def exposition(families: Iterable[Family]) -> str:
    """Text exposition format 0.0.4: `# HELP` and `# TYPE` once per family, then its samples; no timestamps."""
    lines: list[str] = []
    for fam in families:
        if not fam.samples and not fam.suffixed:
            continue  # a family without samples says nothing; HELP/TYPE alone would only confuse readers
        lines.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        lines += [f"{fam.name}{_labels(s.labels)} {_prom_number(s.value)}" for s in fam.samples]
        lines += [f"{fam.name}_{suffix}{_labels(labels)} {_prom_number(value)}"
                  for suffix, labels, value in fam.suffixed]
    return "\n".join(lines) + "\n"


def _labels(labels: Sequence[tuple[str, str]]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels) + "}"


def escape_label_value(value: str) -> str:
    """Backslash, double quote and line feed are the three characters a label value must escape."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _prom_number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))  # shortest text that reads back as the same float


# -- the format table the CLI uses ---------------------------------------------------------------------------


def _render_table(report: Report, *, color: bool = False, **_: Any) -> str:
    from kdiag.output import render_table

    return render_table(report, color=color)


def _render_json(report: Report, *, color: bool = False, **_: Any) -> str:
    from kdiag.output import render_json

    return render_json(report)


# Every `--format` of `kdiag domain`: name -> renderer(report, *, color, expiry_warn_days) -> text.
FORMATS: dict[str, Callable[..., str]] = {
    "table": _render_table,
    "json": _render_json,
    "nagios": render_nagios,
    "prometheus": render_prometheus,
}


def render(fmt: str, report: Report, *, color: bool = False, expiry_warn_days: int = 14) -> str:
    """Render `report` in format `fmt` (a key of FORMATS)."""
    return FORMATS[fmt](report, color=color, expiry_warn_days=expiry_warn_days)


# -- writing a file for another program to pick up ------------------------------------------------------------


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` so a reader (the node_exporter textfile collector, a Nagios passive check)
    sees the old content or the new, never half a file: a temporary file in the same directory (a rename is
    atomic only within one file system), fsync, then os.replace, then fsync of the directory so the rename
    itself survives a crash. Raises OSError."""
    target = Path(path)
    directory = target.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            # mkstemp creates 0600; the file is meant for another user's reader (node_exporter), so give it the
            # permissions a plain open() would (0666 less the umask; reading the umask means setting it).
            umask = os.umask(0o022)
            os.umask(umask)
            os.fchmod(fh.fileno(), 0o666 & ~umask)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some file systems do not let a directory be opened; the data itself is already synced
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# -- helpers -------------------------------------------------------------------------------------------------


def _seconds(ms: int | float) -> float:
    return round(ms / 1000, 3)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_time(text: str) -> datetime:
    """RFC 3339 with a Z, as kdiag writes it (`2026-11-28T03:30:00.123Z`); always timezone-aware."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
