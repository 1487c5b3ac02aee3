"""`kdiag schema` describes the real `kdiag domain --format json` document, so it cannot rot.

Real documents come from the real command against the fake resolver over fixtures/zones (one that never
answers CAA for my.example.com, for an error) and a loopback TLS server. Each is validated twice: against the
published schema (what consumers use), and against a strict copy that forbids properties the schema does not
list, so a field added to the JSON without being added to the schema fails here.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra: pip install -e '.[test]'")

from kdiag.schema import SCHEMA  # noqa: E402
from tests.fakedns import FakeDns  # noqa: E402
from tests.pki import leaf  # noqa: E402
from tests.tlsservers import KongLikeServer  # noqa: E402

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
GATEWAY = "9e454bcfec.kongcloud.dev"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"


def kdiag(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "KONNECT_TOKEN", "KONNECT_URL")}
    env["KDIAG_NO_PLUGINS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr
    return proc


def strict(schema: Any) -> Any:
    """A copy where every object that lists its properties forbids unlisted ones (facts stay open: their keys
    are each rule's own)."""
    schema = copy.deepcopy(schema)

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if "properties" in node and node.get("type") == "object" and key != "facts":
                node["unevaluatedProperties"] = False
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """The schema exactly as `kdiag schema` prints it."""
    proc = kdiag("schema")
    assert proc.returncode == 0 and proc.stderr == ""
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def validators(published: dict[str, Any]) -> tuple[Any, Any]:
    cls = jsonschema.Draft202012Validator
    cls.check_schema(published)
    return cls(published), cls(strict(published))


@pytest.fixture(scope="module")
def resolver() -> Iterator[str]:
    """The fake resolver, except that it never answers CAA questions for my.example.com (an error row)."""
    with FakeDns(ZONES, overrides={("my.example.com.", "CAA"): "DROP"}) as fake:
        host, port = fake.address
        yield f"{host}:{port}"


def assert_valid(validators: tuple[Any, Any], doc: dict[str, Any]) -> None:
    for validator in validators:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_printed_schema_is_the_module_one_and_a_valid_2020_12_schema(published):
    assert published == SCHEMA
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.parametrize(("domain", "status", "exit_code"), [
    ("ok.cname-cases.com", "pass", 0),
    ("my.caa-paramcase.com", "warn", 1),
    ("my.caa-forbid.com", "fail", 2),
    ("my.example.com", "error", 3),
    ("www.example.com", "fail", 2),  # a fix with records to add and to delete
])
def test_real_documents_through_the_fake_resolver_validate(validators, resolver, domain, status, exit_code):
    proc = kdiag("domain", domain, "-t", GATEWAY, "-n", resolver, "--only", DNS_RULES, "--timeout", "0.5",
                 "-f", "json")
    doc = json.loads(proc.stdout)
    assert (proc.returncode, doc["status"], doc["exit_code"]) == (exit_code, status, exit_code)
    assert_valid(validators, doc)


def test_every_rule_and_a_url_note_validate(validators, resolver):
    # All rules (tls-certificate and public-reachability skip or fail on documentation addresses, Konnect
    # skips without a token); the URL input adds a note.
    proc = kdiag("domain", "https://my.caa-forbid.com/x", "-n", resolver, "--timeout", "0.5", "-f", "json")
    doc = json.loads(proc.stdout)
    assert doc["notes"] and len(doc["checks"]) >= 5 and doc["target"] is None
    assert_valid(validators, doc)


def test_a_document_from_a_silent_resolver_validates(validators):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        proc = kdiag("domain", "my.example.com", "-n", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.3",
                     "--only", DNS_RULES, "-f", "json")
    assert proc.returncode == 3
    assert_valid(validators, json.loads(proc.stdout))


def test_a_document_with_certificate_facts_validates(validators, fake_dns, pki, tmp_path):
    """Resolver: the fake (fake_dns); TLS: a loopback server through --connect-to."""
    host, port = fake_dns.address
    ca = pki.anchors_pem(tmp_path / "ca.pem")
    with KongLikeServer({"my.example.com": leaf(pki.r11, "my.example.com")}, default=pki.kong) as server:
        proc = kdiag("domain", "my.example.com", "-t", GATEWAY, "-n", f"{host}:{port}", "--only", "tls-certificate",
                     "--connect-to", server.connect_to("my.example.com"), "--ca-bundle", str(ca), "-f", "json")
    doc = json.loads(proc.stdout)
    assert doc["checks"][0]["facts"]["not_after"]
    assert_valid(validators, doc)


# --- the schema states the contract, not just the types -----------------------------------------------------------

def _doc() -> dict[str, Any]:
    return {
        "schema_version": "1.0", "tool": {"name": "kdiag", "version": "0.1.0"}, "domain": "my.example.com",
        "target": None, "started_at": "2026-11-28T03:00:00.000Z", "duration_ms": 5, "status": "fail",
        "exit_code": 2, "notes": [],
        "checks": [{"id": "rule-a", "title": "T", "status": "fail", "code": "bad", "message": "m",
                    "remediation": {"summary": "fix", "records": [], "delete": [], "commands": []},
                    "facts": {"anything": {"goes": [1]}}, "duration_ms": 1}],
    }


@pytest.mark.parametrize(("change", "why"), [
    (lambda d: d.update(exit_code=0), "exit_code must follow status"),
    (lambda d: d.update(status="pass", exit_code=0), "status pass with a failed check"),
    (lambda d: d["checks"][0].update(remediation=None), "a failed check without its fix"),
    (lambda d: d["checks"][0].update(status="maybe"), "a status outside the closed set"),
    (lambda d: d["checks"][0].update(code="Not Kebab"), "a code that is not kebab-case"),
    (lambda d: d.update(started_at="2026-11-28 03:00:00"), "a timestamp that is not RFC 3339 UTC"),
    (lambda d: d.update(schema_version="2.0"), "another major version"),
    (lambda d: d.pop("checks"), "a required field missing"),
])
def test_the_schema_rejects_documents_that_break_the_contract(validators, change, why):
    doc = _doc()
    assert_valid(validators, doc)
    change(doc)
    assert not validators[0].is_valid(doc), why


def test_consumers_accept_added_fields_but_the_test_copy_does_not(validators):
    doc = _doc()
    doc["new_field_in_1_1"] = True
    assert validators[0].is_valid(doc)  # the published schema: fields may be added within 1.x
    assert not validators[1].is_valid(doc)  # so a field kdiag adds must be added to the schema too
