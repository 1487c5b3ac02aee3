"""`kdiag domain NAME --wait`: until fixed, until the deadline, Ctrl-C, TTL-paced tries, and `--readd` in Konnect.

Each test runs its own fake resolver (tests/fakedns.py) on loopback and names it with --nameserver; "fixing the
zone" swaps the zone the fake serves while kdiag waits (the fake has no cache, so the next try sees it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.zone
import pytest

from kdiag.model import CheckResult, Finding, Remediation, Status
from kdiag.probes import wire
from kdiag.probes.dns import Answer, Dns, Nameserver, Record, recording
from kdiag.watch import FLOOR, next_delay, parse_duration
from tests.fakedns import FakeDns
from tests.konnect_emulator import KonnectEmulator
from tests.konnect_helpers import GATEWAY, kdiag
from tests.support import kdiag_env as env
from tests.support import nameserver_arg as ns

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"
FORBID = "my.caa-forbid.com"


def swap_zone(fake: FakeDns, origin: str, text: str) -> None:
    name = dns.name.from_text(origin)
    fake.zones[name] = dns.zone.from_text(text, origin=name, relativize=False)


def caa_fixed() -> str:
    return (ZONES / "caa-forbid.com.zone").read_text().replace('"sectigo.com"', '"letsencrypt.org"')


@pytest.fixture
def own_dns() -> Iterator[FakeDns]:
    """A fake resolver of this test's own, whose zones the test may change."""
    with FakeDns(ZONES) as fake:
        yield fake


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "kdiag", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())


def read_until(stream: object, marker: str, timeout: float = 20.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in {lines}")


# -- end to end ----------------------------------------------------------------------------------------------------


def test_a_failing_domain_passes_once_the_zone_is_fixed_mid_wait(own_dns):
    proc = start("domain", FORBID, "-n", ns(own_dns), "-t", GATEWAY, "--only", DNS_RULES, "--wait",
                 "--wait-interval", "0.3", "--wait-timeout", "60s")
    try:
        seen = read_until(proc.stderr, "still failing")
        assert "caa-permits-letsencrypt[forbids]" in seen[-1] and "next try in 0.3 s (--wait-interval)" in seen[-1]
        swap_zone(own_dns, "caa-forbid.com", caa_fixed())
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, (out, err)
    assert "nothing fails any more" in err
    assert "PASS: 2 pass" in out  # the normal `domain` output of the last run
    assert "Traceback" not in err


def test_wait_timeout_ends_with_the_last_diagnosis_and_its_exit_code(own_dns):
    started = time.monotonic()
    ran = kdiag("domain", FORBID, "-n", ns(own_dns), "--only", DNS_RULES, "--wait", "--wait-interval", "0.2",
                "--wait-timeout", "0.7s", "-f", "json", token=None)
    assert ran.code == 2, ran.all
    assert time.monotonic() - started < 10
    doc = json.loads(ran.out)
    assert doc["exit_code"] == 2 and {c["code"] for c in doc["checks"]} == {"ok", "forbids"}
    tries = [line for line in ran.err.splitlines() if line.startswith("kdiag: wait: try ")]
    assert len(tries) >= 3 and tries[-1].endswith("--wait-timeout reached, giving up")


def test_ctrl_c_prints_the_last_diagnosis_with_its_exit_code(own_dns):
    proc = start("domain", FORBID, "-n", ns(own_dns), "--only", DNS_RULES, "--wait", "--wait-timeout", "10m")
    try:
        read_until(proc.stderr, "still failing")  # the TTL-paced wait: the next try is seconds away
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 2, (out, err)
    assert "interrupted after 1 try; showing the last diagnosis" in err
    assert "caa-permits-letsencrypt" in out and "FAIL: 1 pass, 1 fail" in out


def test_without_an_interval_the_next_try_follows_the_ttls(own_dns):
    ran = kdiag("domain", FORBID, "-n", ns(own_dns), "--only", DNS_RULES, "--wait", "--wait-timeout", "0.5s",
                token=None)
    assert ran.code == 2
    # The CAA answers behind the failure carry TTL 300 (caa-forbid.com) and the negative TTL 60 of com. and of
    # the CNAME target's zone: the smallest decides, within the 5 s .. 5 min clamp; the deadline cuts it short.
    first = next(line for line in ran.err.splitlines() if line.startswith("kdiag: wait: try 1:"))
    assert "smallest TTL 60 s: CAA " in first and "behind caa-permits-letsencrypt" in first


def test_readd_re_validates_in_konnect_once_dns_passes_and_waits_for_ready(own_dns):
    api = "api.kdiag-konnect.com"
    with KonnectEmulator(resolver=own_dns.address, prefix="9e454bcfec") as emu:
        cp = json.loads(kdiag("konnect", "--konnect-url", emu.url, "cp", "create", "gw", "-f", "json").out)
        assert kdiag("konnect", "--konnect-url", emu.url, "domain", "add", api, "--control-plane",
                     cp["control_plane"]["id"]).code == 0
        emu.step(api, 2)  # Konnect's one validation, against the wrong CNAME
        assert emu.domain(api)["state"] == "error"
        old_id = emu.domain(api)["id"]
        zone = (ZONES / "kdiag-konnect.com.zone").read_text()
        swap_zone(own_dns, "kdiag-konnect.com",
                  zone.replace("api             IN CNAME www.kdiag-konnect.com.", f"api IN CNAME {GATEWAY}."))
        ran = kdiag("domain", api, "-n", ns(own_dns), "-t", GATEWAY, "--konnect-url", emu.url,
                    "--only", f"{DNS_RULES},konnect-domain-status", "--wait", "--readd", "--wait-interval", "0.1",
                    "--wait-timeout", "30s")
        assert ran.code == 0, ran.all
        assert "removing and re-adding api.kdiag-konnect.com in Konnect" in ran.err
        assert emu.domain(api)["state"] == "ready" and emu.domain(api)["id"] != old_id
        assert "konnect-domain-status" in ran.out and "PASS: 3 pass" in ran.out
        assert emu.count("DELETE", "/v2/cloud-gateways/custom-domains") == 1


def test_readd_needs_wait_and_a_token(own_dns):
    without_wait = kdiag("domain", FORBID, "-n", ns(own_dns), "--readd", token=None)
    assert without_wait.code == 3 and "only make sense with --wait" in without_wait.err
    no_token = kdiag("domain", FORBID, "-n", ns(own_dns), "--wait", "--readd", token=None)
    assert no_token.code == 3 and "--readd needs KONNECT_TOKEN" in no_token.err
    bad = kdiag("domain", FORBID, "-n", ns(own_dns), "--wait", "--wait-timeout", "soon", token=None)
    assert bad.code == 3 and "'soon' is not a duration" in bad.err


# -- the parts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("1.5m", 90), ("30m", 1800), ("2h", 7200),
                                               ("500ms", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def _answer(name: str, rdtype: str, ttl: int | None, *, negative_ttl: int | None = None) -> Answer:
    records: tuple[Record, ...] = ()
    soa = None
    if ttl is not None:
        records = (Record(name, rdtype, ttl, '0 issue "sectigo.com"', wire.Caa(0, b"issue", b"sectigo.com")),)
    if negative_ttl is not None:
        soa = Record("example.com", "SOA", 3600, f"ns1. host. 1 3600 600 86400 {negative_ttl}",
                     wire.Soa("ns1", "host", 1, 3600, 600, 86400, negative_ttl))
    return Answer(name, rdtype, "NOERROR", records=records, soa=soa)


def _result(rule_id: str, status: Status) -> CheckResult:
    rem = Remediation("fix it") if status is Status.FAIL else None
    return CheckResult(rule_id, "t", Finding(status, "x", "m", rem), 1)


def test_answer_ttl_is_the_smallest_record_ttl_or_the_negative_caching_ttl():
    assert _answer("a.example.com", "CAA", 120).ttl == 120
    assert _answer("a.example.com", "CAA", None, negative_ttl=30).ttl == 30  # min(SOA TTL 3600, MINIMUM 30)
    assert Answer("a.example.com", "A", "SERVFAIL").ttl is None


def test_next_try_is_the_smallest_ttl_behind_a_failing_check_clamped():
    checks = [_result("caa-permits-letsencrypt", Status.FAIL), _result("dns-cname-target", Status.PASS)]
    answers = {"caa-permits-letsencrypt": [_answer("my.example.com", "CAA", 120), _answer("com", "CAA", 900)],
               "dns-cname-target": [_answer("my.example.com", "A", 7)]}  # passing: its TTL does not count
    assert next_delay(checks, answers) == (120.0, "smallest TTL 120 s: CAA my.example.com, behind "
                                                  "caa-permits-letsencrypt")
    assert next_delay(checks, {"caa-permits-letsencrypt": [_answer("x.com", "CAA", 1)]})[0] == FLOOR
    assert next_delay(checks, {"caa-permits-letsencrypt": [_answer("x.com", "CAA", 86400)]})[0] == 300.0
    # A failing check no DNS answer decided (or Konnect's state) is asked again soon.
    konnect = [_result("konnect-domain-status", Status.FAIL), *checks]
    assert next_delay(konnect, {**answers, "konnect-domain-status": [_answer("my.example.com", "A", 300)]})[0] \
        == FLOOR


def test_recording_sees_each_contexts_own_lookups_including_lookup_many(fake_dns):
    with Dns([Nameserver(*fake_dns.address)], timeout=3) as dns_:
        with recording() as seen:
            dns_.lookup_many([("ok.cname-cases.com", "A"), ("ok.cname-cases.com", "CAA")])
            dns_.lookup("ok.cname-cases.com", "A")  # a cache hit is recorded too
        dns_.lookup("chain.cname-cases.com", "A")  # outside: not recorded
    assert sorted((a.name, a.rdtype) for a in seen) == [("ok.cname-cases.com", "A"), ("ok.cname-cases.com", "A"),
                                                       ("ok.cname-cases.com", "CAA")]
    assert {a.ttl for a in seen if a.rdtype == "A"} == {300}
