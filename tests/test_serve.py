"""`kdiag serve` as Prometheus and an operator meet it: /probe, /metrics, /-/healthy, deadlines, bad requests,
and a clean stop on SIGTERM/SIGINT.

The process tests start the real command (`python -m kdiag serve`) on an ephemeral loopback port with
`--nameserver` pointing at the fake resolver over fixtures/zones. The deadline and cache logic is also tested
on `Exporter` directly, with a stand-in diagnoser whose timing the test controls.
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kdiag.errors import UsageError
from kdiag.model import CheckResult, Finding, Remediation, Report, Status
from kdiag.serve import Exporter, parse_listen
from tests.fakedns import FakeDns
from tests.test_formats import parse_prometheus, promtool_ok, series

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
GATEWAY = "9e454bcfec.kongcloud.dev"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 20) -> tuple[int, str, str, float]:
    """(status, content type, body, seconds taken)."""
    started = time.monotonic()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode(), time.monotonic() - started


@pytest.fixture(scope="module")
def resolver() -> Iterator[str]:
    """The fake resolver over fixtures/zones; questions about slow.example.com are never answered."""
    with FakeDns(ZONES, overrides={("slow.example.com.", "*"): "DROP"}) as fake:
        host, port = fake.address
        yield f"{host}:{port}"


# --- the real command -----------------------------------------------------------------------------------------

def test_probe_answers_like_blackbox_for_passing_and_failing_domains(kdiag_serve, resolver):
    server = kdiag_serve("--nameserver", resolver, "--only", DNS_RULES)
    status, ctype, body, _ = get(f"{server.url}probe?target=ok.cname-cases.com&cname_target={GATEWAY}")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    promtool_ok(body)
    samples = parse_prometheus(body)
    assert series(samples, "probe_success", domain="ok.cname-cases.com") == 1
    assert series(samples, "kdiag_check_status", rule="dns-cname-target", code="ok") == 0
    assert series(samples, "kdiag_probe_deadline_exceeded") == 0
    assert series(samples, "kdiag_probe_deadline_seconds") == 9.5  # no timeout given: Prometheus' 10 s less 0.5

    samples = parse_prometheus(get(f"{server.url}probe?target=my.caa-forbid.com")[2])
    assert series(samples, "probe_success") == 0
    assert series(samples, "kdiag_check_status", rule="caa-permits-letsencrypt", code="forbids") == 2
    assert series(samples, "kdiag_exit_code") == 2

    status, _, body, _ = get(f"{server.url}metrics")
    assert status == 200
    promtool_ok(body)
    own = parse_prometheus(body)
    assert series(own, "kdiag_exporter_probes_total") == 2
    assert series(own, "kdiag_exporter_probe_duration_seconds_count") == 2
    assert series(own, "kdiag_exporter_probe_errors_total", reason="bad_request") == 0
    assert 0 < time.time() - series(own, "process_start_time_seconds") < 120
    assert get(f"{server.url}-/healthy")[:3] == (200, "text/plain; charset=utf-8", "Healthy\n")


def test_a_probe_that_overruns_its_scrape_timeout_answers_in_time(kdiag_serve, resolver):
    # --timeout 5 lets each DNS lookup wait 5 s; Prometheus allows 1.5 s: the answer comes at 1.5 - 0.5 s.
    server = kdiag_serve("--nameserver", resolver, "--only", DNS_RULES, "--timeout", "5")
    status, _, body, took = get(f"{server.url}probe?target=slow.example.com",
                                headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert status == 200 and 0.9 <= took < 1.5
    samples = parse_prometheus(body)
    assert series(samples, "probe_success", domain="slow.example.com") == 0
    assert series(samples, "kdiag_probe_deadline_exceeded") == 1
    assert series(samples, "kdiag_exit_code") == 3
    # ?timeout= works the same, and the smaller of the two wins.
    _, _, body, took = get(f"{server.url}probe?target=slow.example.com&timeout=0.8",
                           headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
    assert took < 0.8 and series(parse_prometheus(body), "kdiag_probe_deadline_seconds") == 0.4
    own = parse_prometheus(get(f"{server.url}metrics")[2])
    assert series(own, "kdiag_exporter_probe_errors_total", reason="deadline_exceeded") == 2


BAD_QUERIES = [
    ("", "missing parameter 'target'"),
    ("target=", "target: "),
    ("target=my_host.example.com", "invalid characters"),
    ("target=192.0.2.1", "IP address"),
    ("target=ok.cname-cases.com&cname_target=https://x.kongcloud.dev/", "cname_target: "),
    ("target=ok.cname-cases.com&module=http_2xx", "unknown parameter 'module'"),
    ("target=a.example.com&target=b.example.com", "more than once"),
    ("target=ok.cname-cases.com&timeout=abc", "not a number"),
    ("target=ok.cname-cases.com&timeout=0", "more than 0"),
    ("target=ok.cname-cases.com&timeout=nan", "timeout"),
    ("target=my%0Ahost.example.com", "invalid characters"),  # still one line
    ("target=ok.cname-cases.com", None),  # and the server still answers good requests afterwards
]


def test_bad_parameters_are_400_with_one_line(kdiag_serve, resolver):
    server = kdiag_serve("--nameserver", resolver, "--only", DNS_RULES)
    for query, words in BAD_QUERIES:
        status, ctype, body, _ = get(f"{server.url}probe?{query}")
        if words is None:
            assert status == 200, body
            continue
        assert (status, ctype) == (400, "text/plain; charset=utf-8"), query
        assert body.endswith("\n") and body.count("\n") == 1 and words in body, (query, body)
    own = parse_prometheus(get(f"{server.url}metrics")[2])
    assert series(own, "kdiag_exporter_probe_errors_total", reason="bad_request") == len(BAD_QUERIES) - 1


def test_unknown_paths_are_404(kdiag_serve, resolver):
    server = kdiag_serve("--nameserver", resolver)
    assert get(f"{server.url}probes?target=x")[0] == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_sigterm_and_sigint_even_mid_probe(kdiag_serve, resolver, sig):
    server = kdiag_serve("--nameserver", resolver, "--only", DNS_RULES, "--timeout", "5")
    # A probe in flight (its lookups never answered) must not hold the process up.
    def slow_probe() -> None:
        try:
            get(f"{server.url}probe?target=slow.example.com&timeout=30", timeout=30)
        except (OSError, http.client.HTTPException):
            pass  # the stopping server may cut it off; what matters is that the process ends

    worker = threading.Thread(target=slow_probe, daemon=True)
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3
    assert "Traceback" not in server.proc.stderr.read()
    with pytest.raises(OSError):  # the port is closed
        socket.create_connection(("127.0.0.1", int(server.address.rsplit(":", 1)[1])), timeout=2).close()


def kdiag_proc(*args: str) -> Any:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("KONNECT_TOKEN", "KONNECT_URL")}
    env["KDIAG_NO_PLUGINS"] = "1"
    return subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True, text=True, env=env,
                          timeout=30, stdin=subprocess.DEVNULL)


def assert_one_error_line(err: str, *words: str) -> None:
    assert err.startswith("kdiag: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err


def test_listen_errors_are_one_line_exit_3(resolver):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = kdiag_proc("serve", "--listen", f"127.0.0.1:{port}", "--nameserver", resolver)
    assert proc.returncode == 3
    assert_one_error_line(proc.stderr, f"--listen 127.0.0.1:{port}")
    proc = kdiag_proc("serve", "--listen", "example.com:80", "--nameserver", resolver)
    assert proc.returncode == 3
    assert_one_error_line(proc.stderr, "not an IP address")
    proc = kdiag_proc("serve", "--nameserver", resolver, "--only", "no-such-rule")
    assert proc.returncode == 3
    assert_one_error_line(proc.stderr, "unknown rule id no-such-rule")


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9115", ("127.0.0.1", 9115)), ("[::1]:0", ("::1", 0)), ("localhost:8080", ("localhost", 8080)),
])
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9115", "127.0.0.1", "127.0.0.1:99999", "[::1]", "host.example:80", ":9115"])
def test_parse_listen_rejects(text):
    with pytest.raises(UsageError):
        parse_listen(text)


# --- Exporter with a stand-in diagnoser ------------------------------------------------------------------------

class StandIn:
    """Answers after `delay` seconds with a report for the name; raises for names it is told to."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.cleared = 0
        self.closed = False

    def clear_caches(self) -> None:
        self.cleared += 1

    def diagnose(self, name: str, target: str | None = None) -> Any:
        time.sleep(self.delay)
        if name.startswith("crash"):
            raise RuntimeError("boom")
        finding = Finding(Status.FAIL, "bad", "m", Remediation("fix")) if name.startswith("bad") else \
            Finding(Status.PASS, "ok", "m")
        report = Report(name, "2026-11-28T03:00:00.000Z", 3, [CheckResult("rule-a", "T", finding, 2)], target)
        return SimpleNamespace(report=report, resolver_silent=False)

    def close(self) -> None:
        self.closed = True


def test_exporter_deadline_is_the_smaller_timeout_less_the_offset():
    exporter = Exporter(StandIn(), timeout_offset=0.5)
    assert exporter.parse_probe("target=a.example.com", None).deadline == 9.5
    assert exporter.parse_probe("target=a.example.com", "4").deadline == 3.5
    assert exporter.parse_probe("target=a.example.com&timeout=2", "4").deadline == 1.5
    assert exporter.parse_probe("target=a.example.com&timeout=0.6", None).deadline == 0.3  # never under half
    exporter.close()


def test_exporter_answers_at_the_deadline_and_abandons_the_slow_diagnosis():
    stand_in = StandIn(delay=2.0)
    exporter = Exporter(stand_in, timeout_offset=0.1)
    started = time.monotonic()
    response = exporter.probe("target=a.example.com&timeout=0.5")
    assert time.monotonic() - started < 1.0
    samples = parse_prometheus(response.body)
    assert (response.status, series(samples, "probe_success"), series(samples, "kdiag_probe_deadline_exceeded")) \
        == (200, 0, 1)
    exporter.close()
    assert stand_in.closed


def test_exporter_results_errors_and_counters():
    exporter = Exporter(StandIn())
    assert series(parse_prometheus(exporter.probe("target=good.example.com").body), "probe_success") == 1
    assert series(parse_prometheus(exporter.probe("target=bad.example.com").body), "probe_success") == 0
    crashed = exporter.probe("target=crash.example.com")
    assert crashed.status == 500 and crashed.body.count("\n") == 1 and "RuntimeError: boom" in crashed.body
    assert exporter.probe("nonsense").status == 400
    own = parse_prometheus(exporter.metrics())
    assert series(own, "kdiag_exporter_probes_total") == 2
    assert series(own, "kdiag_exporter_probe_errors_total", reason="internal_error") == 1
    assert series(own, "kdiag_exporter_probe_errors_total", reason="bad_request") == 1
    assert series(own, "kdiag_exporter_probes_in_flight") == 0
    exporter.close()


def test_exporter_forgets_cached_answers_between_scrapes():
    # A long-running exporter must see a fixed CNAME or a renewed certificate on the next scrape.
    now = [100.0]
    stand_in = StandIn()
    exporter = Exporter(stand_in, cache_max_age=5.0, clock=lambda: now[0])
    exporter.probe("target=a.example.com")
    exporter.probe("target=b.example.com")
    assert stand_in.cleared == 0  # probes close together share the caches
    now[0] += 5.0
    exporter.probe("target=a.example.com")
    assert stand_in.cleared == 1
    exporter.close()
