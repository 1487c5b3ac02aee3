"""`--format nagios` and `--format prometheus` as a monitoring system reads them, and `--output FILE`.

The Nagios line and its perfdata are parsed here by the Monitoring Plugins rules (label quoting, `U`, range
expressions `[@][start:][end]`), and the thresholds are evaluated the way a plugin framework would, so "warn
if fewer than 14 days" is checked to mean exactly that. The Prometheus text is parsed by a strict parser of
the 0.0.4 exposition grammar written for this file (and by promtool when it is installed). Reports come from
two places: built by hand for exact values, and from the real CLI against the fake resolver (named in each
test) and a loopback TLS server.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kdiag.formats import FORMATS, render_nagios, render_prometheus, write_atomically
from kdiag.model import CheckResult, Finding, Remediation, Report, Status
from tests.fakedns import FakeDns
from tests.pki import DAY, leaf, now
from tests.tlsservers import KongLikeServer

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
GATEWAY = "9e454bcfec.kongcloud.dev"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"
STARTED = "2026-11-28T03:00:00.000Z"
FIX = Remediation("Fix it")


# --- a Monitoring Plugins reader -------------------------------------------------------------------------------

NAGIOS_LINE = re.compile(r"^KDIAG (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+?)(?: \| ([^\n]*))?$")
STATE_OF_EXIT = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


@dataclass(frozen=True)
class PerfItem:
    label: str
    value: float | None  # None for U
    uom: str
    warn: str
    crit: str
    min: str
    max: str


def parse_perfdata(text: str) -> dict[str, PerfItem]:
    """'label'=value[UOM];[warn];[crit];[min];[max] separated by spaces; a quoted label may hold spaces and ''."""
    items: dict[str, PerfItem] = {}
    pos = 0
    token = re.compile(r"(?:'((?:[^']|'')+)'|([^' =]+))=(U|-?\d+(?:\.\d+)?)([a-zA-Z%]*)((?:;[^; ]*){0,4})(?: |$)")
    while pos < len(text):
        m = token.match(text, pos)
        assert m, f"bad perfdata at {text[pos:]!r}"
        label = (m.group(1) or m.group(2)).replace("''", "'")
        value = None if m.group(3) == "U" else float(m.group(3))
        assert not (value is None and m.group(4)), "U takes no unit"
        fields = (m.group(5).split(";")[1:] + ["", "", "", ""])[:4]
        assert label not in items, f"label {label!r} twice"
        items[label] = PerfItem(label, value, m.group(4), *fields)
        pos = m.end()
    return items


def alerts(range_expr: str, value: float) -> bool:
    """Monitoring Plugins range semantics: [@][start:][end]; start defaults to 0, empty end is +inf, ~ is -inf;
    alert when outside [start, end], or inside with @."""
    if range_expr == "":
        return False
    inside = range_expr.startswith("@")
    expr = range_expr[1:] if inside else range_expr
    if ":" in expr:
        start_text, end_text = expr.split(":", 1)
        start = -math.inf if start_text == "~" else float(start_text or 0)
    else:
        start, end_text = 0.0, expr
    end = math.inf if end_text == "" else float(end_text)
    within = start <= value <= end
    return within if inside else not within


def nagios(text: str) -> tuple[str, str, dict[str, PerfItem]]:
    assert "\n" not in text.rstrip("\n"), "the Nagios output is one line"
    m = NAGIOS_LINE.match(text.rstrip("\n"))
    assert m, text
    return m.group(1), m.group(2), parse_perfdata(m.group(3) or "")


# --- a strict Prometheus text-format reader --------------------------------------------------------------------

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf"^({METRIC_NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

Series = tuple[str, frozenset[tuple[str, str]]]


def parse_prometheus(text: str) -> dict[Series, float]:
    """Parse text exposition 0.0.4 strictly: HELP then TYPE once per family before its samples, samples of a
    family together, no timestamps, no duplicate series, a final newline, no blank lines."""
    assert text.endswith("\n") and not text.endswith("\n\n"), "exactly one trailing newline"
    samples: dict[Series, float] = {}
    helped: set[str] = set()
    typed: dict[str, str] = {}
    finished: set[str] = set()
    current: str | None = None
    for line in text[:-1].split("\n"):
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(METRIC_NAME, name) and name not in helped, line
            helped.add(name)
            if current is not None:
                finished.add(current)
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and name not in typed and kind in TYPES, line
            typed[name] = kind
            continue
        assert not line.startswith("#"), f"unexpected comment {line!r}"
        m = SAMPLE.match(line)
        assert m, f"not a sample line (or it has a timestamp): {line!r}"
        name, value_text = m.group(1), m.group(m.lastindex or 0)
        family = current or ""
        assert name == family or (typed.get(family) in ("summary", "histogram")
                                  and name in (f"{family}_sum", f"{family}_count")), f"{name} outside its family"
        assert family not in finished
        labels = frozenset((k, unescape(v)) for k, v in re.findall(LABEL, m.group(2) or ""))
        assert len(labels) == len(re.findall(LABEL, m.group(2) or "")), "a label twice"
        assert (name, labels) not in samples, f"duplicate series {line!r}"
        samples[(name, labels)] = float(value_text.replace("+Inf", "inf").replace("-Inf", "-inf"))
    return samples


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def series(samples: dict[Series, float], name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def promtool_ok(text: str) -> None:
    """promtool's lint, when the Prometheus tools are installed (tests/install-prometheus.sh)."""
    if shutil.which("promtool") is None:
        return
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


# --- reports built by hand -------------------------------------------------------------------------------------

def check(rule: str, status: Status, code: str = "x", ms: int = 5, **facts: object) -> CheckResult:
    return CheckResult(rule, rule.title(), Finding(status, code, f"{rule} {status.value}",
                                                   FIX if status is Status.FAIL else None, facts), ms)


def report(*checks: CheckResult, domain: str = "my.example.com", duration_ms: int = 42) -> Report:
    return Report(domain=domain, started_at=STARTED, duration_ms=duration_ms, checks=list(checks))


def cert_facts(days_left: float, lifetime_days: float = 90) -> dict[str, object]:
    not_after = datetime(2026, 11, 28, 3, tzinfo=UTC) + timedelta(days=days_left)
    not_before = not_after - timedelta(days=lifetime_days)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return {"not_before": not_before.strftime(fmt), "not_after": not_after.strftime(fmt), "days_left": days_left}


@pytest.mark.parametrize(("statuses", "state"), [
    ([Status.PASS, Status.SKIP], "OK"),
    ([Status.PASS, Status.WARN], "WARNING"),
    ([Status.WARN, Status.FAIL], "CRITICAL"),
    ([Status.ERROR, Status.WARN], "UNKNOWN"),
    ([Status.ERROR, Status.FAIL], "CRITICAL"),  # a failure is known even when another check could not tell
])
def test_nagios_state_follows_the_exit_code(statuses, state):
    r = report(*(check(f"rule-{i}", s) for i, s in enumerate(statuses)))
    got, _, _ = nagios(render_nagios(r))
    assert got == state == STATE_OF_EXIT[r.exit_code]


def test_nagios_summary_names_what_is_wrong_worst_first():
    r = report(check("d", Status.PASS, "ok"), check("c", Status.WARN, "odd"), check("t", Status.FAIL, "old"),
               check("w", Status.ERROR, "boom"), check("a", Status.FAIL, "gone"), domain="x.io")
    state, summary, _ = nagios(render_nagios(r))
    assert state == "CRITICAL"
    assert summary == "x.io: fail: t[old], a[gone]; error: w[boom]; warn: c[odd]"
    # Real rule ids are longer: what does not fit in 80 characters is counted, the worst shown first.
    r = report(check("dns-cname-target", Status.PASS, "ok"), check("caa-permits-letsencrypt", Status.WARN, "odd"),
               check("tls-certificate", Status.FAIL, "expired"), check("public-reachability", Status.ERROR, "boom"))
    _, summary, _ = nagios(render_nagios(r))
    assert summary == "my.example.com: fail: tls-certificate[expired] (+2 more)"


def test_nagios_ok_summary_counts_the_checks():
    _, summary, _ = nagios(render_nagios(report(check("a", Status.PASS), check("b", Status.PASS),
                                                check("c", Status.SKIP))))
    assert summary == "my.example.com: 2 checks passed, 1 skipped"


def test_nagios_first_part_stays_short_and_still_names_the_worst_problem():
    many = [check(f"rule-{i}", Status.FAIL, "broken-in-a-long-way") for i in range(5)]
    line = render_nagios(report(*many))
    first = line.split(" | ")[0]
    assert first == "KDIAG CRITICAL - my.example.com: fail: rule-0[broken-in-a-long-way] (+4 more)"
    assert len(first) <= 80
    # A domain too long for 80 characters still gets the first failing check named.
    long_domain = ".".join(["a" * 60] * 4) + ".com"
    first = render_nagios(report(*many, domain=long_domain)).split(" | ")[0]
    assert first.endswith(": fail: rule-0[broken-in-a-long-way] (+4 more)")


def test_nagios_line_cannot_be_broken_by_what_it_quotes():
    r = report(check("rule-a", Status.FAIL, "x|y\nz"), domain="evil|name\n.example.com")
    line = render_nagios(r)
    assert "\n" not in line and line.count(" | ") == 1
    state, summary, perf = nagios(line)
    assert state == "CRITICAL" and "time" in perf


def test_perfdata_times_and_certificate_days_with_their_thresholds():
    r = report(check("dns-cname-target", Status.PASS, "ok", ms=12),
               check("tls-certificate", Status.PASS, "ok", ms=81, **cert_facts(34.2)), duration_ms=412)
    _, _, perf = nagios(render_nagios(r))
    assert list(perf) == ["time", "dns_time", "tls_time", "cert_days_left"]
    assert (perf["time"].value, perf["time"].uom, perf["time"].min) == (0.412, "s", "0")
    assert (perf["dns_time"].value, perf["tls_time"].value) == (0.012, 0.081)
    days = perf["cert_days_left"]
    assert (days.value, days.uom, days.warn, days.crit) == (34.2, "d", "14:", "0:")
    assert "'cert_days_left'=34.2d;14:;0:" in render_nagios(r)


@pytest.mark.parametrize(("days_left", "warned", "critical"), [
    (34.2, False, False),
    (14.0, False, False),  # the rule warns below 14 days, and so does the range 14:
    (13.9, True, False),
    (0.5, True, False),
    (-3.0, True, True),  # expired
])
def test_cert_days_thresholds_mean_what_tls_certificate_judges(days_left, warned, critical):
    _, _, perf = nagios(render_nagios(report(check("tls-certificate", Status.PASS, "ok", **cert_facts(days_left)))))
    item = perf["cert_days_left"]
    assert (alerts(item.warn, item.value), alerts(item.crit, item.value)) == (warned, critical)


def test_cert_days_warn_threshold_follows_expiry_warn_days_and_short_lifetimes():
    r = report(check("tls-certificate", Status.PASS, "ok", **cert_facts(20)))
    assert nagios(render_nagios(r, expiry_warn_days=30))[2]["cert_days_left"].warn == "30:"
    # A 6-day certificate is judged by its renewal point (2/3 of the lifetime), not by --expiry-warn-days.
    short = report(check("tls-certificate", Status.PASS, "ok", **cert_facts(3, lifetime_days=6)))
    assert nagios(render_nagios(short))[2]["cert_days_left"].warn == "2:"


def test_perfdata_is_unknown_when_no_certificate_was_seen_and_absent_when_the_check_did_not_run():
    no_cert = report(check("dns-cname-target", Status.PASS, "ok"),
                     check("tls-certificate", Status.SKIP, "no-address"))
    perf = nagios(render_nagios(no_cert))[2]
    assert perf["cert_days_left"].value is None and perf["tls_time"].value is None
    assert "'cert_days_left'=U;14:;0:" in render_nagios(no_cert)
    dns_only = nagios(render_nagios(report(check("dns-cname-target", Status.PASS, "ok"))))[2]
    assert set(dns_only) == {"time", "dns_time"}


# --- Prometheus, from reports built by hand --------------------------------------------------------------------

@pytest.mark.parametrize(("status", "value", "success"), [
    (Status.PASS, 0, 1), (Status.SKIP, 0, 1), (Status.WARN, 1, 1), (Status.FAIL, 2, 0), (Status.ERROR, 3, 0),
])
def test_check_status_values_mirror_the_exit_codes(status, value, success):
    text = render_prometheus(report(check("rule-a", status, "some-code"), check("rule-b", Status.PASS, "ok")))
    promtool_ok(text)
    samples = parse_prometheus(text)
    assert series(samples, "kdiag_check_status", rule="rule-a", code="some-code") == value
    assert series(samples, "probe_success") == success
    assert series(samples, "kdiag_exit_code") == report(check("a", status)).exit_code


def test_prometheus_document_has_the_blackbox_names_and_the_kdiag_extras():
    r = report(check("dns-cname-target", Status.PASS, "ok", ms=12),
               check("tls-certificate", Status.WARN, "expiring-soon", ms=81, **cert_facts(5)), duration_ms=412)
    text = render_prometheus(r)
    promtool_ok(text)
    samples = parse_prometheus(text)
    assert series(samples, "probe_success", domain="my.example.com") == 1  # a warning still succeeds
    assert series(samples, "probe_duration_seconds") == 0.412
    not_after = datetime(2026, 11, 28, 3, tzinfo=UTC) + timedelta(days=5)
    assert series(samples, "probe_ssl_earliest_cert_expiry") == not_after.timestamp()
    assert series(samples, "kdiag_check_duration_seconds", rule="tls-certificate") == 0.081
    started = datetime(2026, 11, 28, 3, tzinfo=UTC).timestamp()
    assert series(samples, "kdiag_last_run_timestamp_seconds") == pytest.approx(started + 0.412)
    assert series(samples, "kdiag_exit_code") == 1
    # Every sample carries the domain, so one textfile directory can hold files for many domains.
    assert all(dict(labels).get("domain") == "my.example.com" for _, labels in samples)


def test_no_certificate_means_no_expiry_series():
    samples = parse_prometheus(render_prometheus(report(check("tls-certificate", Status.SKIP, "no-address"))))
    assert not [n for n, _ in samples if n == "probe_ssl_earliest_cert_expiry"]


def test_label_values_are_escaped():
    nasty = 'back\\slash "quoted"\nnew line'
    text = render_prometheus(report(check("rule-a", Status.FAIL, nasty), domain=nasty))
    promtool_ok(text)
    samples = parse_prometheus(text)
    assert series(samples, "kdiag_check_status", code=nasty, domain=nasty) == 2


def test_every_renderer_is_pure_and_deterministic():
    r = report(check("dns-cname-target", Status.PASS, "ok"), check("tls-certificate", Status.PASS, "ok",
                                                                    **cert_facts(40)))
    for fmt, render in FORMATS.items():
        assert render(r, color=False, expiry_warn_days=14) == render(r, color=False, expiry_warn_days=14), fmt


# --- through the real CLI against the fake resolver ------------------------------------------------------------

def kdiag(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "KONNECT_TOKEN", "KONNECT_URL")}
    env["KDIAG_NO_PLUGINS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def resolver() -> Iterator[str]:
    """The fake resolver over fixtures/zones, except that CAA questions for my.example.com are never answered
    (a check that errors: UNKNOWN)."""
    with FakeDns(ZONES, overrides={("my.example.com.", "CAA"): "DROP"}) as fake:
        host, port = fake.address
        yield f"{host}:{port}"


CASES = [  # domain, exit code: pass, warn, fail, error
    ("ok.cname-cases.com", 0),
    ("my.caa-paramcase.com", 1),
    ("my.caa-forbid.com", 2),
    ("my.example.com", 3),
]


@pytest.mark.parametrize(("domain", "code"), CASES)
def test_cli_nagios_exit_code_and_state_agree(resolver, domain, code):
    proc = kdiag("domain", domain, "-t", GATEWAY, "-n", resolver, "--only", DNS_RULES, "--timeout", "0.5",
                 "--format", "nagios")
    assert proc.returncode == code, proc.stderr
    state, summary, perf = nagios(proc.stdout)
    assert state == STATE_OF_EXIT[code]
    assert summary.startswith(f"{domain}: ")
    if code == 2:
        assert "caa-permits-letsencrypt[forbids]" in summary
    if code == 3:
        assert "caa-permits-letsencrypt[lookup-failed]" in summary
    assert perf["time"].uom == "s" and perf["dns_time"].value is not None


@pytest.mark.parametrize(("domain", "code"), CASES)
def test_cli_prometheus_probe_success_and_exit_code(resolver, domain, code):
    proc = kdiag("domain", domain, "-t", GATEWAY, "-n", resolver, "--only", DNS_RULES, "--timeout", "0.5",
                 "--format", "prometheus")
    assert proc.returncode == code, proc.stderr
    promtool_ok(proc.stdout)
    samples = parse_prometheus(proc.stdout)
    assert series(samples, "probe_success", domain=domain) == (1 if code in (0, 1) else 0)
    assert series(samples, "kdiag_exit_code") == code
    assert {dict(ls)["rule"] for n, ls in samples if n == "kdiag_check_status"} == set(DNS_RULES.split(","))


def test_cli_nagios_on_a_silent_resolver_still_prints_the_line_on_stdout():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # reads nothing, answers nothing
        silent.bind(("127.0.0.1", 0))
        proc = kdiag("domain", "my.example.com", "-n", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.3",
                     "--only", DNS_RULES, "--format", "nagios")
    assert proc.returncode == 3
    assert nagios(proc.stdout)[0] == "UNKNOWN"  # Nagios reads stdout only
    assert proc.stderr.startswith("kdiag: error: ") and "did not answer" in proc.stderr


def test_cli_certificate_days_and_expiry_from_a_real_handshake(fake_dns, pki, tmp_path):
    """Resolver: the fake (fake_dns); TLS: a loopback server reached through --connect-to."""
    host, port = fake_dns.address
    served = leaf(pki.r11, "my.example.com", not_before=now() - 30 * DAY, not_after=now() + 60 * DAY)
    ca = pki.anchors_pem(tmp_path / "ca.pem")
    with KongLikeServer({"my.example.com": served}, default=pki.kong) as server:
        common = ["domain", "my.example.com", "-t", GATEWAY, "-n", f"{host}:{port}", "--only", "tls-certificate",
                  "--connect-to", server.connect_to("my.example.com"), "--ca-bundle", str(ca), "--timeout", "3"]
        line = kdiag(*common, "--format", "nagios")
        prom = kdiag(*common, "--format", "prometheus")
    assert line.returncode == 0 and prom.returncode == 0, line.stdout + line.stderr
    state, _, perf = nagios(line.stdout)
    days = perf["cert_days_left"]
    assert state == "OK" and 59.5 <= days.value <= 60.0 and days.uom == "d"
    assert not alerts(days.warn, days.value) and perf["tls_time"].value is not None
    expiry = series(parse_prometheus(prom.stdout), "probe_ssl_earliest_cert_expiry", domain="my.example.com")
    assert expiry == int(served.leaf.not_valid_after_utc.timestamp())


# --- --output FILE ---------------------------------------------------------------------------------------------

def test_output_file_is_written_whole_with_readable_permissions(resolver, tmp_path):
    target = tmp_path / "textfile" / "my.caa-forbid.com.prom"
    target.parent.mkdir()
    target.write_text("old content\n")
    args = ["domain", "my.caa-forbid.com", "-t", GATEWAY, "-n", resolver, "--only", DNS_RULES]
    proc = kdiag(*args, "--format", "prometheus", "--output", str(target))
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", "")
    text = target.read_text()
    assert series(parse_prometheus(text), "probe_success") == 0
    assert os.listdir(target.parent) == [target.name]  # no temporary file left behind
    assert stat.S_IMODE(target.stat().st_mode) & 0o044 == 0o044  # readable by node_exporter's user
    # JSON and the table go to files the same way.
    proc = kdiag(*args, "--format", "json", "-o", str(tmp_path / "report.json"))
    assert proc.returncode == 2 and json.loads((tmp_path / "report.json").read_text())["status"] == "fail"


def test_output_into_a_missing_directory_is_one_error_line(resolver, tmp_path):
    proc = kdiag("domain", "ok.cname-cases.com", "-n", resolver, "--only", DNS_RULES, "--format", "nagios",
                 "--output", str(tmp_path / "missing" / "x.txt"))
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.startswith("kdiag: error: --output ") and proc.stderr.count("\n") == 1


def test_write_atomically_replaces_and_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.prom"
    write_atomically(target, "one\n")
    write_atomically(target, "two\n")
    assert target.read_text() == "two\n" and os.listdir(tmp_path) == ["out.prom"]

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomically(target, "three\n")
    assert target.read_text() == "two\n" and os.listdir(tmp_path) == ["out.prom"]
