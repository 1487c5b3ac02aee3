"""`kdiag konnect …` end to end against the Konnect emulator: provisioning, idempotency, validation, secrets."""

from __future__ import annotations

import json

import pytest

from tests.konnect_emulator import VALID_TOKEN, KonnectEmulator
from tests.konnect_helpers import GATEWAY, kdiag

CP_UUID = "0949471e-b759-45ba-87ab-ee63fb781388"
SECRET = "s3cr3t-Value_42"


def k(emu: KonnectEmulator, *args: str, **kw: object) -> object:
    return kdiag("konnect", "--konnect-url", emu.url, *args, **kw)  # type: ignore[arg-type]


def _json(ran: object) -> dict:
    assert ran.code == 0, ran.err  # type: ignore[attr-defined]
    return json.loads(ran.out)  # type: ignore[attr-defined]


def _cp(emu: KonnectEmulator) -> str:
    return _json(k(emu, "cp", "create", "gw", "-f", "json"))["control_plane"]["id"]


# -- control planes ------------------------------------------------------------------------------------------------


def test_cp_create_makes_a_serverless_control_plane_then_reuses_it(konnect_emu):
    first = k(konnect_emu, "cp", "create", "gw", "--description", "demo")
    assert first.code == 0, first.err
    assert "control plane 'gw' created" in first.out
    assert f"gateway hostname (derived; confirm in Konnect): {GATEWAY}" in first.out
    (cp,) = konnect_emu.control_planes.values()
    assert cp["config"]["cluster_type"] == "CLUSTER_TYPE_SERVERLESS"
    assert cp["config"]["cloud_gateway"] is False and cp["config"]["auth_type"] == "pinned_client_certs"

    second = _json(k(konnect_emu, "cp", "create", "gw", "-f", "json"))
    assert second["action"] == "reused" and second["control_plane"]["id"] == cp["id"]
    assert konnect_emu.count("POST", "/v2/control-planes") == 1
    assert "already exists; reusing it" in k(konnect_emu, "cp", "create", "gw").out


def test_cp_create_v1_uses_the_serverless_v1_body(konnect_emu):
    doc = _json(k(konnect_emu, "cp", "create", "gw1", "--v1", "-f", "json"))
    config = doc["control_plane"]["config"]
    assert config["cluster_type"] == "CLUSTER_TYPE_SERVERLESS_V1" and config["cloud_gateway"] is True
    assert doc["gateway_hostname"] == "9e454bcfec.us.serverless.gateways.konggateway.com"


def test_cp_create_refuses_to_reuse_a_non_serverless_control_plane(konnect_emu):
    konnect_emu.handle("POST", "/v2/control-planes", {}, f"Bearer {VALID_TOKEN}", {"name": "hybrid"})
    ran = k(konnect_emu, "cp", "create", "hybrid")
    assert ran.code == 3
    assert "is CLUSTER_TYPE_CONTROL_PLANE, not CLUSTER_TYPE_SERVERLESS; choose another name" in ran.err


# -- data planes ---------------------------------------------------------------------------------------------------


def test_dp_create_puts_the_serverless_configuration_and_a_rerun_changes_nothing(konnect_emu):
    cp_id = _cp(konnect_emu)
    first = k(konnect_emu, "dp", "create", "--control-plane", cp_id)
    assert first.code == 0, first.err
    assert "applied: aws/us initializing" in first.out
    (conf,) = konnect_emu.configurations.values()
    assert conf["kind"] == "serverless.v1" and conf["control_plane_geo"] == "us"
    assert conf["dataplane_group_config"] == [{"provider": "aws", "region": "us"}]

    again = _json(k(konnect_emu, "dp", "create", "--control-plane", cp_id, "-f", "json"))
    assert again["action"] == "unchanged"  # Konnect answered 409: configurations are identical
    assert again["configuration"]["dataplane_groups"][0]["state"] == "ready"
    assert konnect_emu.configurations[conf["id"]]["entity_version"] == 1


def test_dp_create_for_an_unknown_control_plane(konnect_emu):
    ran = k(konnect_emu, "dp", "create", "--control-plane", CP_UUID)
    assert ran.code == 3
    assert f"Konnect has no control plane {CP_UUID} in region us" in ran.err


# -- domains -------------------------------------------------------------------------------------------------------


def test_domain_add_prints_the_cname_record_and_the_next_step(konnect_emu):
    cp_id = _cp(konnect_emu)
    ran = k(konnect_emu, "domain", "add", "API.Example.com.", "--control-plane", cp_id)
    assert ran.code == 0, ran.err
    assert f"  api.example.com. 300 IN CNAME {GATEWAY}." in ran.out.splitlines()
    assert f"next: once it resolves, check: kdiag domain api.example.com --target {GATEWAY}" in ran.out
    (dom,) = konnect_emu.domains.values()
    assert (dom["domain"], dom["kind"], dom["control_plane_geo"]) == ("api.example.com", "serverless.v1", "us")

    again = _json(k(konnect_emu, "domain", "add", "api.example.com", "--control-plane", cp_id, "-f", "json"))
    assert again["action"] == "unchanged"
    assert again["cname_record"] == f"api.example.com. 300 IN CNAME {GATEWAY}."
    assert konnect_emu.count("POST", "/v2/cloud-gateways/custom-domains") == 1


def test_domain_add_refuses_a_domain_on_another_control_plane(konnect_emu):
    cp_id = _cp(konnect_emu)
    other = _json(k(konnect_emu, "cp", "create", "other", "-f", "json"))["control_plane"]["id"]
    assert k(konnect_emu, "domain", "add", "api.example.com", "--control-plane", cp_id).code == 0
    ran = k(konnect_emu, "domain", "add", "api.example.com", "--control-plane", other)
    assert ran.code == 3
    assert f"already attached to control plane {cp_id}" in ran.err
    assert "kdiag konnect domain remove api.example.com" in ran.err


def test_domain_list_remove_and_remove_again(konnect_emu):
    cp_id = _cp(konnect_emu)
    k(konnect_emu, "domain", "add", "api.example.com", "--control-plane", cp_id)
    table = k(konnect_emu, "domain", "list")
    assert table.code == 0
    assert table.out.splitlines()[0].split() == ["DOMAIN", "STATE", "CONTROL", "PLANE", "GEO", "CREATED", "REASON"]
    assert "api.example.com" in table.out and cp_id in table.out

    gone = _json(k(konnect_emu, "domain", "remove", "api.example.com", "-f", "json"))
    assert gone["action"] == "removed"
    assert konnect_emu.count("DELETE", "/v2/cloud-gateways/custom-domains") == 1
    for _ in range(2):  # being removed, then gone: both are success and send no DELETE
        ran = k(konnect_emu, "domain", "remove", "api.example.com")
        assert ran.code == 0 and "nothing to do" in ran.out
    assert konnect_emu.count("DELETE", "/v2/cloud-gateways/custom-domains") == 1
    assert _json(k(konnect_emu, "domain", "list", "-f", "json")) == {"custom_domains": []}


def test_domain_readd_removes_waits_and_adds_with_the_same_control_plane_and_geo(konnect_emu):
    cp_id = _cp(konnect_emu)
    k(konnect_emu, "domain", "add", "api.example.com", "--control-plane", cp_id)
    old_id = next(iter(konnect_emu.domains))
    ran = k(konnect_emu, "domain", "readd", "api.example.com", "--poll-interval", "0.01", "-f", "json")
    doc = _json(ran)
    assert doc["action"] == "readded"
    new = doc["custom_domain"]
    assert new["id"] != old_id and new["state"] == "created"
    assert (new["control_plane_id"], new["control_plane_geo"]) == (cp_id, "us")
    assert list(konnect_emu.domains) == [new["id"]]


def test_domain_readd_of_an_unknown_domain(konnect_emu):
    ran = k(konnect_emu, "domain", "readd", "nope.example.com")
    assert ran.code == 3
    assert "nope.example.com is not in Konnect, so there is nothing to re-add" in ran.err


@pytest.mark.parametrize("args,message", [
    (("domain", "add", "*.example.com", "--control-plane", CP_UUID), "is a wildcard"),
    (("domain", "add", "my.example.com", "--control-plane", "cp-1"), "--control-plane 'cp-1' is not a UUID"),
    (("domain", "remove", "exa mple.com"), "invalid characters"),
    (("dp", "create", "--control-plane", "123"), "is not a UUID"),
    (("--region", "mars", "domain", "list"), "'mars' is not one of"),
    (("cp", "create", "x"), "must be 2 to 256 characters"),
    (("secure-backend", "--control-plane", CP_UUID, "--service", CP_UUID, "--header", "Bad Header"),
     "not a valid header name"),
])
def test_arguments_are_checked_before_any_request(konnect_emu, args, message):
    ran = k(konnect_emu, *args)
    assert ran.code == 3
    assert message in ran.err and ran.err.startswith("kdiag: error: ") and ran.err.count("\n") == 1
    assert konnect_emu.requests == []


# -- secure-backend ------------------------------------------------------------------------------------------------


def _service(emu: KonnectEmulator, cp_id: str) -> str:
    status, body, _, _ = emu.handle("POST", f"/v2/control-planes/{cp_id}/core-entities/services", {},
                                    f"Bearer {VALID_TOKEN}", {"name": "backend", "url": "https://backend.example"})
    assert status == 201
    return body["id"]


def _plugin(emu: KonnectEmulator) -> dict:
    (plugin,) = emu.plugins.values()
    return plugin


def test_secure_backend_always_sets_the_header_and_never_shows_the_secret(konnect_emu):
    cp_id = _cp(konnect_emu)
    svc = _service(konnect_emu, cp_id)
    args = ("--debug", "secure-backend", "--control-plane", cp_id, "--service", svc, "--header", "X-Backend-Auth")
    first = k(konnect_emu, *args, env={"KDIAG_BACKEND_SECRET": SECRET})
    assert first.code == 0, first.err
    assert "created: every request to the backend carries X-Backend-Auth" in first.out
    plugin = _plugin(konnect_emu)
    assert plugin["name"] == "request-transformer" and plugin["service"] == {"id": svc}
    # replace overwrites a value a client sent, add sets it when absent: the backend always sees ours.
    assert plugin["config"]["replace"]["headers"] == [f"X-Backend-Auth:{SECRET}"]
    assert plugin["config"]["add"]["headers"] == [f"X-Backend-Auth:{SECRET}"]
    assert SECRET not in first.all and "[REDACTED]" in first.err

    again = k(konnect_emu, *args, env={"KDIAG_BACKEND_SECRET": SECRET})
    assert again.code == 0 and "already sets this secret; nothing to do" in again.out
    assert konnect_emu.count("PUT", "/v2/control-planes") == 0
    assert konnect_emu.count("POST", f"/v2/control-planes/{cp_id}/core-entities/services/{svc}/plugins") == 1


def test_secure_backend_rotates_from_stdin_and_keeps_other_transformations(konnect_emu):
    cp_id = _cp(konnect_emu)
    svc = _service(konnect_emu, cp_id)
    konnect_emu.handle("POST", f"/v2/control-planes/{cp_id}/core-entities/services/{svc}/plugins", {},
                       f"Bearer {VALID_TOKEN}", {"name": "request-transformer",
                                                  "config": {"add": {"headers": ["X-Env:prod", "x-backend-auth:old"]}}})
    ran = k(konnect_emu, "secure-backend", "--control-plane", cp_id, "--service", svc, "--header", "X-Backend-Auth",
            "--secret-stdin", "-f", "json", input="rotated-secret\n")
    doc = _json(ran)
    assert doc["action"] == "updated" and doc["header"] == "X-Backend-Auth"
    assert "rotated-secret" not in ran.all
    config = _plugin(konnect_emu)["config"]
    assert config["add"]["headers"] == ["X-Env:prod", "X-Backend-Auth:rotated-secret"]
    assert config["replace"]["headers"] == ["X-Backend-Auth:rotated-secret"]


def test_a_secret_with_json_escapes_is_redacted_from_debug_traces_too(konnect_emu):
    cp_id = _cp(konnect_emu)
    svc = _service(konnect_emu, cp_id)
    secret = 'quo"te\\back'
    ran = k(konnect_emu, "--debug", "secure-backend", "--control-plane", cp_id, "--service", svc, "--header", "X-A",
            env={"KDIAG_BACKEND_SECRET": secret})
    assert ran.code == 0, ran.err
    assert _plugin(konnect_emu)["config"]["add"]["headers"] == [f"X-A:{secret}"]
    assert secret not in ran.all and json.dumps(secret)[1:-1] not in ran.all
    assert "X-A:[REDACTED]" in ran.err


def test_secure_backend_needs_a_secret_and_never_takes_it_from_argv(konnect_emu):
    ran = k(konnect_emu, "secure-backend", "--control-plane", CP_UUID, "--service", CP_UUID, "--header", "X-A",
            env={"KDIAG_BACKEND_SECRET": None})
    assert ran.code == 3
    assert "no secret in $KDIAG_BACKEND_SECRET" in ran.err and "never taken from the command line" in ran.err
    assert konnect_emu.requests == []


def test_secure_backend_for_an_unknown_service(konnect_emu):
    cp_id = _cp(konnect_emu)
    ran = k(konnect_emu, "secure-backend", "--control-plane", cp_id, "--service", CP_UUID, "--header", "X-A",
            env={"KDIAG_BACKEND_SECRET": SECRET})
    assert ran.code == 3 and f"has no service {CP_UUID}" in ran.err


# -- the token never shows -----------------------------------------------------------------------------------------


def test_the_token_never_appears_in_any_output(konnect_emu):
    outputs = []
    for fmt in ("table", "json"):
        outputs.append(k(konnect_emu, "--debug", "cp", "create", "gw", "-f", fmt))
    cp_id = next(iter(konnect_emu.control_planes))
    for args in (("dp", "create", "--control-plane", cp_id), ("domain", "add", "t.example.com", "--control-plane",
                                                             cp_id), ("domain", "list"), ("domain", "remove",
                                                                                          "t.example.com")):
        outputs.append(k(konnect_emu, "--debug", *args, "-f", "json"))
    konnect_emu.inject(500, method="POST")  # an error path (a create is not retried)
    outputs.append(k(konnect_emu, "--debug", "domain", "add", "u.example.com", "--control-plane", cp_id))
    outputs.append(kdiag("konnect", "--konnect-url", konnect_emu.url, "--debug", "domain", "list",
                         token="kpat_" + "Y" * 40))
    for ran in outputs:
        assert VALID_TOKEN not in ran.all and "Y" * 40 not in ran.all
    assert all("authorization: Bearer [REDACTED]" in ran.err for ran in outputs)
    assert outputs[-2].code == 3 and outputs[-1].code == 3
