"""konnect-domain-status: every code, against the Konnect emulator and a resolver serving fixtures/zones.

The emulator validates a domain once, through the fake resolver (or the real bed), exactly when its state
leaves `initializing`; the rule re-checks the DNS through its own resolver. Serving a fixed copy of the zone to
the rule only is how "the DNS was fixed after Konnect's one validation" looks.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kdiag.context import Context, Options, utcnow
from kdiag.engine import run_one
from kdiag.konnect.client import KonnectClient
from kdiag.model import CheckResult, Status
from kdiag.probes.dns import Dns, Nameserver
from kdiag.rules.konnect_domain_status import konnect_domain_status
from tests.fakedns import FakeDns
from tests.konnect_emulator import VALID_TOKEN, KonnectEmulator
from tests.konnect_helpers import GATEWAY, kdiag

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
ZONE = "kdiag-konnect.com"
API = f"api.{ZONE}"  # CNAME to www.kdiag-konnect.com. in the fixture: wrong until fixed
SHOP = f"shop.{ZONE}"  # right from the start
LOCKED = f"locked.caa-parent.{ZONE}"  # right CNAME, but CAA at a parent names only pki.goog
WRONG_LINE = "api             IN CNAME www.kdiag-konnect.com."
FIXED_LINE = f"api             IN CNAME {GATEWAY}."
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def fixed_zone_text() -> str:
    text = (ZONES / f"{ZONE}.zone").read_text()
    assert WRONG_LINE in text
    return text.replace(WRONG_LINE, FIXED_LINE)


@pytest.fixture(scope="module")
def fixed_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeDns]:
    """A resolver serving the zones with api.kdiag-konnect.com fixed."""
    where = tmp_path_factory.mktemp("zones-fixed")
    for path in ZONES.glob("*.zone"):
        shutil.copy(path, where / path.name)
    (where / f"{ZONE}.zone").write_text(fixed_zone_text())
    with FakeDns(where) as fake:
        yield fake


def check(emu: KonnectEmulator | None, dns_at: tuple[str, int], name: str, *, token: str = VALID_TOKEN,
          url: str | None = None, now: datetime | None = None, **options: object) -> CheckResult:
    client = KonnectClient(token, base_url=url or emu.url, sleep=lambda s: None) if (emu or url) else None
    try:
        with Dns([Nameserver(*dns_at)], timeout=3) as dns:
            ctx = Context(domain=name, dns=dns, options=Options(**options),  # type: ignore[arg-type]
                          now=(lambda: now) if now else utcnow, konnect=client)
            return run_one(konnect_domain_status, ctx)
    finally:
        if client is not None:
            client.close()


def provision(emu: KonnectEmulator, *names: str, cp_name: str = "gw") -> str:
    ran = kdiag("konnect", "--konnect-url", emu.url, "cp", "create", cp_name, "-f", "json")
    cp_id = json.loads(ran.out)["control_plane"]["id"]
    for name in names:
        assert kdiag("konnect", "--konnect-url", emu.url, "domain", "add", name, "--control-plane", cp_id).code == 0
    return cp_id


def commands(result: CheckResult) -> list[str]:
    assert result.finding.remediation is not None
    return result.finding.remediation.command_lines()


# -- skip and error ------------------------------------------------------------------------------------------------


def test_no_token_skips_and_says_how_to_enable_it(fake_dns):
    result = check(None, fake_dns.address, SHOP)
    assert (result.status, result.finding.code) == (Status.SKIP, "no-token")
    assert "set it to a Konnect personal (kpat_…) or system account (spat_…) token" in result.finding.message


def test_a_refused_token_is_an_error_saying_what_to_check(konnect_emu, fake_dns):
    result = check(konnect_emu, fake_dns.address, SHOP, token="spat_" + "R" * 50)
    assert (result.status, result.finding.code) == (Status.ERROR, "bad-token")
    assert "HTTP 401" in result.finding.message and "check KONNECT_TOKEN" in result.finding.message


def test_konnect_failing_is_could_not_tell(konnect_emu, fake_dns):
    konnect_emu.inject(503, times=10)
    result = check(konnect_emu, fake_dns.address, SHOP)
    assert (result.status, result.finding.code) == (Status.ERROR, "lookup-failed")
    assert "HTTP 503 after 4 attempts" in result.finding.message
    assert result.finding.message.endswith(f"cannot tell whether Konnect has {SHOP}")


def test_konnect_unreachable_is_could_not_tell(fake_dns):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = check(None, fake_dns.address, SHOP, url=url)
    assert (result.status, result.finding.code) == (Status.ERROR, "lookup-failed")
    assert "connection refused" in result.finding.message


def test_an_unknown_state_is_could_not_tell(konnect_emu, fake_dns):
    provision(konnect_emu, SHOP)
    konnect_emu.set_domain(SHOP, state="suspended")
    result = check(konnect_emu, fake_dns.address, SHOP)
    assert (result.status, result.finding.code) == (Status.ERROR, "unknown-state")
    assert "state 'suspended'" in result.finding.message


# -- not-attached --------------------------------------------------------------------------------------------------


def test_not_attached_names_the_only_serverless_control_plane_in_the_fix(konnect_emu, fake_dns):
    cp_id = provision(konnect_emu)
    result = check(konnect_emu, fake_dns.address, SHOP)
    assert (result.status, result.finding.code) == (Status.FAIL, "not-attached")
    assert result.finding.message == f"Konnect has no custom domain {SHOP} (searched every control plane the " \
                                     "token can read)"
    assert commands(result) == [f"kdiag konnect domain add {SHOP} --control-plane {cp_id} --region us"]
    assert "the only serverless control plane in us, 'gw'" in result.finding.remediation.summary


def test_not_attached_uses_the_given_control_plane_or_a_placeholder(konnect_emu, fake_dns):
    provision(konnect_emu, cp_name="one")
    provision(konnect_emu, cp_name="two")
    unsure = check(konnect_emu, fake_dns.address, SHOP)
    assert commands(unsure) == [f"kdiag konnect domain add {SHOP} --control-plane CONTROL_PLANE_ID --region us"]
    assert "2 serverless control planes in us ('one', 'two'); pick one" in unsure.finding.remediation.summary
    given = "0949471e-b759-45ba-87ab-ee63fb781388"
    sure = check(konnect_emu, fake_dns.address, SHOP, control_plane=given)
    assert commands(sure) == [f"kdiag konnect domain add {SHOP} --control-plane {given} --region us"]


def test_a_domain_being_removed_is_not_attached(konnect_emu, fake_dns):
    provision(konnect_emu, SHOP)
    konnect_emu.set_domain(SHOP, state="terminating")
    result = check(konnect_emu, fake_dns.address, SHOP)
    assert result.finding.code == "not-attached"
    assert f"Konnect is removing {SHOP} (state terminating)" in result.finding.message


# -- pending -------------------------------------------------------------------------------------------------------


def test_pending_says_how_long_ago_the_domain_was_created(konnect_emu, fake_dns):
    provision(konnect_emu, SHOP)
    konnect_emu.step_on_get = False
    konnect_emu.set_domain(SHOP, created_at=(NOW - timedelta(minutes=12)).isoformat().replace("+00:00", "Z"))
    result = check(konnect_emu, fake_dns.address, SHOP, now=NOW)
    assert (result.status, result.finding.code) == (Status.WARN, "pending")
    assert result.finding.message == f"Konnect is still setting {SHOP} up (state created, created 12 min ago); " \
                                     "check again in a few minutes"
    assert result.finding.remediation is None
    assert result.finding.facts["age_seconds"] == 720


def test_pending_with_wrong_dns_warns_that_validation_will_fail(konnect_emu, fake_dns):
    provision(konnect_emu, API)
    konnect_emu.step(API)  # initializing
    konnect_emu.step_on_get = False
    result = check(konnect_emu, fake_dns.address, API)
    assert (result.status, result.finding.code) == (Status.WARN, "pending")
    assert f"but now {API} -> www.{ZONE}, not {GATEWAY}: its one validation will fail" in result.finding.message
    rem = result.finding.remediation
    assert [r.zone_line() for r in rem.records] == [f"{API}. 300 IN CNAME {GATEWAY}."]


# -- error, stale-validation, unverified, ready --------------------------------------------------------------------


def test_error_shows_konnects_reason_and_the_fix_then_readd(konnect_emu, fake_dns):
    provision(konnect_emu, API)
    konnect_emu.step(API, 2)  # created -> initializing -> validated (through the wrong CNAME): error
    result = check(konnect_emu, fake_dns.address, API)
    assert (result.status, result.finding.code) == (Status.FAIL, "error")
    assert f"Konnect reports {API} as error: \"CNAME points to 'www.{ZONE}.' instead of '{GATEWAY}.'\"" \
        in result.finding.message
    rem = result.finding.remediation
    assert [r.zone_line() for r in rem.records] == [f"{API}. 300 IN CNAME {GATEWAY}."]
    assert rem.command_lines() == [f"kdiag konnect domain readd {API}"]
    assert result.finding.facts["expected_target"] == GATEWAY
    assert result.finding.facts["expected_target_source"].startswith("derived (not read")


def test_error_because_caa_forbids_lets_encrypt_stays_error(konnect_emu, fake_dns):
    provision(konnect_emu, LOCKED)
    konnect_emu.step(LOCKED, 2)
    result = check(konnect_emu, fake_dns.address, LOCKED)
    assert (result.status, result.finding.code) == (Status.FAIL, "error")
    assert "prevents issuance by letsencrypt.org" in result.finding.message
    assert f"CAA at caa-parent.{ZONE} does not permit letsencrypt.org" in result.finding.message


def test_stale_validation_when_the_dns_was_fixed_after_konnect_validated(konnect_emu, fake_dns, fixed_dns):
    provision(konnect_emu, API)
    konnect_emu.step(API, 2)  # validated against the broken zone: error
    result = check(konnect_emu, fixed_dns.address, API)
    assert (result.status, result.finding.code) == (Status.FAIL, "stale-validation")
    assert result.finding.message.startswith(f"Konnect reports {API} as error (\"CNAME points to")
    assert f"but the DNS is right now: {API} -> {GATEWAY} (203.0.113.10, 2001:db8::10)" in result.finding.message
    assert result.finding.message.endswith("Konnect validates a serverless domain once and never again")
    assert result.finding.remediation.commands == (("kdiag", "konnect", "domain", "readd", API),)
    assert commands(result) == [f"kdiag konnect domain readd {API}"]


def test_unverified_online_status_with_wrong_dns(konnect_emu, fake_dns):
    provision(konnect_emu, API)
    konnect_emu.set_domain(API, state="ready")
    domain_id = konnect_emu.domain(API)["id"]
    konnect_emu.online[domain_id] = {"cname": "unverified", "ssl": "verified"}
    result = check(konnect_emu, fake_dns.address, API, target=GATEWAY)
    assert (result.status, result.finding.code) == (Status.FAIL, "unverified")
    assert f"Konnect's online status for {API} says cname unverified; and now {API} -> www.{ZONE}" \
        in result.finding.message
    assert result.finding.facts["expected_target_source"] == "given with --target"
    assert commands(result) == [f"kdiag konnect domain readd {API}"]


def test_unverified_online_status_with_right_dns_is_stale(konnect_emu, fake_dns):
    provision(konnect_emu, SHOP)
    konnect_emu.set_domain(SHOP, state="ready")
    konnect_emu.online[konnect_emu.domain(SHOP)["id"]] = {"cname": "unverified", "ssl": "unverified"}
    result = check(konnect_emu, fake_dns.address, SHOP)
    assert result.finding.code == "stale-validation"
    assert "ready but its online status says cname unverified, ssl unverified" in result.finding.message


def test_ready(konnect_emu, fake_dns):
    cp_id = provision(konnect_emu, SHOP)
    konnect_emu.step(SHOP, 2)
    result = check(konnect_emu, fake_dns.address, SHOP)
    assert (result.status, result.finding.code) == (Status.PASS, "ready")
    assert result.finding.message == f"Konnect has {SHOP} ready (control plane {cp_id}, us); online status: " \
                                     "cname verified, ssl verified"


# -- the whole story on the real DNS bed ---------------------------------------------------------------------------


def test_fail_then_fix_the_zone_then_readd_then_ready_on_the_real_bed(dns_bed):
    host, _ = dns_bed.resolver_address
    with KonnectEmulator(resolver=dns_bed.resolver_address, prefix="9e454bcfec") as emu:

        def diagnose() -> tuple[int, dict[str, dict]]:
            ran = kdiag("domain", API, "--nameserver", host, "--konnect-url", emu.url, "-f", "json",
                        "--only", "dns-cname-target,caa-permits-letsencrypt,konnect-domain-status")
            doc = json.loads(ran.out)
            return ran.code, {c["id"]: c for c in doc["checks"]}

        def konnect(*args: str) -> None:
            ran = kdiag("konnect", "--konnect-url", emu.url, *args)
            assert ran.code == 0, ran.err

        code, checks = diagnose()
        assert code == 2 and checks["konnect-domain-status"]["code"] == "not-attached"
        konnect("cp", "create", "shop-gateway")
        cp_id = next(iter(emu.control_planes))
        konnect("dp", "create", "--control-plane", cp_id)
        konnect("domain", "add", API, "--control-plane", cp_id)  # added while the CNAME is still wrong

        states = []
        for _ in range(3):  # created, initializing, then Konnect's one validation fails
            code, checks = diagnose()
            states.append(checks["konnect-domain-status"]["code"])
        assert states == ["pending", "pending", "error"] and code == 2
        assert checks["dns-cname-target"]["status"] == "fail"

        with dns_bed.override_zone(ZONE, fixed_zone_text()):
            code, checks = diagnose()
            assert checks["dns-cname-target"]["status"] == "pass"
            status = checks["konnect-domain-status"]
            assert (code, status["code"]) == (2, "stale-validation")
            assert status["remediation"]["commands"] == [f"kdiag konnect domain readd {API}"]

            konnect("domain", "readd", API, "--poll-interval", "0.01")
            states = []
            for _ in range(3):
                code, checks = diagnose()
                states.append((code, checks["konnect-domain-status"]["code"]))
            assert states == [(1, "pending"), (1, "pending"), (0, "ready")]


def test_without_a_token_the_cli_skips_the_rule(fake_dns):
    host, port = fake_dns.address
    ran = kdiag("domain", SHOP, "--nameserver", f"{host}:{port}", "--only", "konnect-domain-status", token=None)
    assert ran.code == 0
    assert "SKIP" in ran.out and "no-token" in ran.out


def test_a_malformed_token_is_one_line_before_any_check(fake_dns):
    host, port = fake_dns.address
    ran = kdiag("domain", SHOP, "--nameserver", f"{host}:{port}", token="kpat_with-dashes")
    assert ran.code == 3
    assert ran.err.startswith("kdiag: error: KONNECT_TOKEN does not look like a Konnect token")
    assert ran.out == ""


def test_the_token_never_appears_in_the_diagnosis(konnect_emu, fake_dns):
    host, port = fake_dns.address
    refused = "kpat_" + "Z" * 48
    for token in (VALID_TOKEN, refused):
        for fmt in ("table", "json"):
            ran = kdiag("domain", SHOP, "--nameserver", f"{host}:{port}", "--konnect-url", konnect_emu.url,
                        "--only", "konnect-domain-status", "-f", fmt, token=token)
            assert ran.code in (2, 3) and ran.out
            assert token not in ran.all


def test_the_target_is_derived_from_the_documented_control_plane_response():
    from kdiag.konnect.gateway import derive_target

    cp = json.loads((ZONES.parent / "konnect" / "serverless-control-plane.json").read_text())
    assert derive_target(cp, "us").target == "52ec253413.kongcloud.dev"
    cp["config"]["cluster_type"] = "CLUSTER_TYPE_SERVERLESS_V1"
    assert derive_target(cp, "eu").target == "52ec253413.eu.serverless.gateways.konggateway.com"
    cp["config"]["cluster_type"] = "CLUSTER_TYPE_CONTROL_PLANE"
    derived = derive_target(cp, "us")
    assert derived.target is None and "not a serverless one" in derived.how
