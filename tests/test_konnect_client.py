"""The Konnect client against the emulator over real HTTP: tokens, errors, retries, timeouts, pagination, traces."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from kdiag.konnect.client import (
    KonnectAuthError,
    KonnectClient,
    KonnectError,
    KonnectTokenError,
    KonnectUnavailable,
    check_token,
    describe_problem,
)
from tests.konnect_emulator import VALID_TOKEN, KonnectEmulator
from tests.konnect_helpers import kdiag

OTHER_TOKEN = "spat_" + "Q" * 50  # well-formed, but not one the emulator knows


def _client(emu: KonnectEmulator, token: str = VALID_TOKEN, **kw: object) -> KonnectClient:
    return KonnectClient(token, base_url=emu.url, **kw)  # type: ignore[arg-type]


def _cp(client: KonnectClient, name: str = "gw") -> dict:
    return client.create_control_plane({"name": name, "cluster_type": "CLUSTER_TYPE_SERVERLESS",
                                        "cloud_gateway": False, "auth_type": "pinned_client_certs"})


# -- tokens ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["kpat_" + "a" * 46, "spat_" + "Z9" * 25, "  kpat_abc123\n"])
def test_personal_and_system_account_tokens_are_accepted(token):
    assert check_token(token) == token.strip()


@pytest.mark.parametrize("token,why", [
    ("", "not set"),
    ("ghp_" + "a" * 36, "does not start with kpat_ or spat_"),
    ("Bearer kpat_abc", "whitespace"),
    ("kpat_abc-def", "characters other than letters and digits"),
    ("kpat_", "nothing after the prefix"),
])
def test_malformed_tokens_are_rejected_without_quoting_them(token, why):
    with pytest.raises(KonnectTokenError) as info:
        check_token(token)
    assert why in str(info.value)
    if len(token.strip()) > 5:
        assert token.strip() not in str(info.value)


def test_a_malformed_token_stops_the_cli_before_any_request(konnect_emu):
    bad = "kpat_not-a-token-at-all"
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "domain", "list", token=bad)
    assert ran.code == 3
    assert ran.err.startswith("kdiag: error: KONNECT_TOKEN does not look like a Konnect token")
    assert ran.err.count("\n") == 1 and bad not in ran.all
    assert konnect_emu.requests == []


def test_a_missing_token_says_how_to_set_it(konnect_emu):
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "domain", "list", token=None)
    assert ran.code == 3
    assert "KONNECT_TOKEN is not set" in ran.err and "kpat_" in ran.err


def test_an_unknown_token_gets_401_and_says_what_to_check(konnect_emu):
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "domain", "list", token=OTHER_TOKEN)
    assert ran.code == 3
    assert ran.err.count("\n") == 1
    assert "HTTP 401: Unauthorized" in ran.err and "check KONNECT_TOKEN" in ran.err
    assert OTHER_TOKEN not in ran.all


def test_403_says_the_token_lacks_a_permission(konnect_emu):
    konnect_emu.inject(403)
    with _client(konnect_emu) as client, pytest.raises(KonnectAuthError) as info:
        client.list_custom_domains()
    assert "HTTP 403: Forbidden; You do not have permission" in str(info.value)
    assert "lacks a permission" in str(info.value)


# -- error bodies ---------------------------------------------------------------------------------------------------


def test_problem_json_title_detail_and_each_invalid_parameter_in_one_line(konnect_emu):
    with _client(konnect_emu) as client:
        cp = _cp(client)
        with pytest.raises(KonnectError) as info:
            client.create_custom_domain({"control_plane_id": cp["id"], "control_plane_geo": "mars",
                                         "domain": "", "kind": "serverless.v1"})
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("POST /v2/cloud-gateways/custom-domains: HTTP 400: Bad Request; Invalid Parameters; ")
    assert "domain: domain must be longer than or equal to 1 characters" in text
    assert "control_plane_geo: control_plane_geo must be one of us, eu, au, me, in, sg (one of us, eu" in text
    assert "[konnect:trace:" in text


def test_core_entity_and_rate_limit_bodies_are_described_too():
    grpc = {"code": 3, "message": "data constraint error",
            "details": [{"type": "ERROR_TYPE_REFERENCE", "field": "name",
                         "messages": ["name (type: unique) constraint failed"]}]}
    assert describe_problem(grpc) == "data constraint error; name: name (type: unique) constraint failed"
    assert describe_problem({"message": "API rate limit exceeded"}) == "API rate limit exceeded"


# -- retries --------------------------------------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(konnect_emu):
    konnect_emu.inject(429, retry_after="1", method="GET")
    started = time.monotonic()
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "--debug", "domain", "list")
    assert ran.code == 0, ran.err
    assert time.monotonic() - started >= 1.0
    assert konnect_emu.count("GET", "/v2/cloud-gateways/custom-domains") == 2
    assert "rate limited; retrying in 1 s" in ran.err


def test_429_without_retry_after_uses_ratelimit_reset(konnect_emu):
    konnect_emu.inject(429, method="GET")  # RateLimit-Reset: 48, no Retry-After
    waits: list[float] = []
    with _client(konnect_emu, sleep=waits.append) as client:
        assert client.list_custom_domains() == []
    assert waits == [48.0]


def test_429_asking_for_too_long_a_wait_is_reported_not_slept(konnect_emu):
    konnect_emu.inject(429, retry_after="3600")
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "domain", "list")
    assert ran.code == 3
    assert "rate-limited kdiag (HTTP 429: API rate limit exceeded); retry after 3600 s" in ran.err
    assert konnect_emu.count("GET", "/v2") == 1


def test_429_on_a_create_is_not_retried(konnect_emu):
    konnect_emu.inject(429, retry_after="0", method="POST")
    with _client(konnect_emu) as client, pytest.raises(KonnectUnavailable, match="HTTP 429"):
        _cp(client)
    assert konnect_emu.count("POST", "/v2/control-planes") == 1
    assert konnect_emu.control_planes == {}


def test_5xx_retries_idempotent_requests_with_bounded_backoff(konnect_emu):
    konnect_emu.inject(503, times=2, method="GET")
    waits: list[float] = []
    with _client(konnect_emu, sleep=waits.append) as client:
        assert client.list_custom_domains() == []
    assert waits == [0.5, 1.0]
    assert konnect_emu.count("GET", "/v2") == 3


def test_5xx_that_persists_is_one_error_after_the_last_attempt(konnect_emu):
    konnect_emu.inject(500, times=10, method="GET")
    waits: list[float] = []
    with _client(konnect_emu, sleep=waits.append) as client, pytest.raises(KonnectUnavailable) as info:
        client.list_custom_domains()
    assert waits == [0.5, 1.0, 2.0]
    assert "failed with HTTP 500 after 4 attempts: Internal; An internal failure occurred" in str(info.value)


def test_5xx_on_a_create_is_not_retried(konnect_emu):
    konnect_emu.inject(500, method="POST")
    with _client(konnect_emu, sleep=lambda s: None) as client, pytest.raises(KonnectUnavailable):
        _cp(client)
    assert konnect_emu.count("POST", "/v2") == 1


def test_cli_retries_a_5xx_then_succeeds(konnect_emu):
    konnect_emu.inject(502, method="GET")
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "domain", "list", "-f", "json")
    assert ran.code == 0 and '"custom_domains": []' in ran.out


# -- slow and unreachable -------------------------------------------------------------------------------------------


def test_a_slow_api_is_one_line_and_exit_3(konnect_emu):
    konnect_emu.delay = 1.5
    started = time.monotonic()
    ran = kdiag("konnect", "--konnect-url", konnect_emu.url, "--timeout", "0.3", "domain", "list")
    assert time.monotonic() - started < 1.4
    assert ran.code == 3
    assert ran.err == ("kdiag: error: GET /v2/cloud-gateways/custom-domains: Konnect at 127.0.0.1 did not answer "
                       "within 0.3 s\n")


def test_an_unreachable_api_is_one_line_and_exit_3():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before use: nothing listens there
    ran = kdiag("konnect", "--konnect-url", f"http://127.0.0.1:{port}", "domain", "list")
    assert ran.code == 3
    assert ran.err.count("\n") == 1
    assert "cannot reach Konnect at 127.0.0.1: connection refused" in ran.err


# -- hosts, pagination, transport ------------------------------------------------------------------------------------


def test_regional_and_global_hosts_and_the_override():
    client = KonnectClient(VALID_TOKEN, region="eu")
    assert client.regional("/v2/control-planes") == "https://eu.api.konghq.com/v2/control-planes"
    assert client.regional("/v2/control-planes", "sg") == "https://sg.api.konghq.com/v2/control-planes"
    assert client.global_("/v2/cloud-gateways/custom-domains") == \
        "https://global.api.konghq.com/v2/cloud-gateways/custom-domains"
    staging = KonnectClient(VALID_TOKEN, base_url="https://us.api.konghq.tech/")
    assert staging.global_("/v2/x") == staging.regional("/v2/x") == "https://us.api.konghq.tech/v2/x"
    with pytest.raises(KonnectError, match="unknown region 'mars'"):
        KonnectClient(VALID_TOKEN, region="mars")
    assert VALID_TOKEN not in repr(client)


def test_lists_follow_every_page(konnect_emu):
    with _client(konnect_emu, page_size=2) as client:
        cp = _cp(client)
        for i in range(5):
            client.create_custom_domain({"control_plane_id": cp["id"], "control_plane_geo": "us",
                                         "domain": f"d{i}.example.com", "kind": "serverless.v1"})
        konnect_emu.step_on_get = False
        found = client.list_custom_domains()
    assert sorted(d["domain"] for d in found) == [f"d{i}.example.com" for i in range(5)]
    pages = [r.query["page[number]"] for r in konnect_emu.requests if r.method == "GET"]
    assert pages == ["1", "2", "3"]


def test_the_transport_is_injectable(konnect_emu):
    seen: list[str] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(f"{request.method} {request.url.path}")
            return super().handle_request(request)

    with _client(konnect_emu, transport=Recording()) as client:
        client.list_control_planes()
    assert seen == ["GET /v2/control-planes"]


def test_debug_traces_redact_the_token(konnect_emu):
    lines: list[str] = []
    with _client(konnect_emu, debug=lines.append) as client:
        client.list_control_planes()
    trace = "\n".join(lines)
    assert "> GET " in trace and "< 200 OK" in trace
    assert "authorization: Bearer [REDACTED]" in trace
    assert VALID_TOKEN not in trace


def test_the_emulator_answers_with_the_fields_the_specs_require(konnect_emu):
    # Required properties from the public specs (control-planes v2 ControlPlane, cloud-gateways v2
    # ConfigurationManifest, CustomDomain, CustomDomainOnlineStatus, BaseError, PaginatedMeta).
    with _client(konnect_emu) as client:
        cp = _cp(client)
        assert {"id", "name", "description", "labels", "config", "created_at", "updated_at"} <= cp.keys()
        assert {"control_plane_endpoint", "telemetry_endpoint", "cluster_type", "auth_type", "cloud_gateway",
                "proxy_urls"} <= cp["config"].keys()
        conf = client.put_configuration({"control_plane_id": cp["id"], "control_plane_geo": "us",
                                         "kind": "serverless.v1",
                                         "dataplane_groups": [{"provider": "aws", "region": "us"}]})
        assert {"id", "control_plane_id", "control_plane_geo", "dataplane_group_config", "dataplane_groups",
                "entity_version", "created_at", "updated_at"} <= conf.keys()
        assert {"id", "provider", "region", "state"} <= conf["dataplane_groups"][0].keys()
        dom = client.create_custom_domain({"control_plane_id": cp["id"], "control_plane_geo": "us",
                                           "domain": "x.example.com", "kind": "serverless.v1"})
        assert {"id", "control_plane_id", "control_plane_geo", "domain", "state", "state_metadata",
                "entity_version", "created_at", "updated_at"} <= dom.keys()
        assert set(client.custom_domain_online_status(dom["id"])) == {"cname", "ssl"}
        page = client.get_json(client.global_("/v2/cloud-gateways/custom-domains"))
        assert set(page["meta"]["page"]) == {"number", "size", "total"}
        with pytest.raises(KonnectError) as info:
            client.create_custom_domain({"control_plane_id": cp["id"], "control_plane_geo": "us",
                                         "domain": "x.example.com", "kind": "serverless.v1"})
    assert info.value.status == 409
    assert {"status", "title", "instance", "detail"} <= info.value.body.keys()
    assert konnect_emu.requests[-1].status == 409
