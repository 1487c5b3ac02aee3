"""A Konnect API emulator on real HTTP (127.0.0.1, ephemeral port), faithful to the public specs kdiag uses.

Served (one port for the regional and the global host, as kdiag's --konnect-url gives both):

    /v2/control-planes[/{id}]                                   GET POST | GET PATCH DELETE      (control-planes v2)
    /v2/cloud-gateways/configurations[/{id}]                    GET PUT | GET                    (cloud-gateways v2)
    /v2/cloud-gateways/custom-domains[/{id}[/online-status]]    GET POST | GET DELETE | GET
    /v2/control-planes/{id}/core-entities/services[/{id}[/plugins]], .../plugins[/{id}]       (core entities)

Fidelity: problem+json errors with status/title/instance/detail (and invalid_parameters on 400), 401 for any
token not in `tokens`, 409 for a duplicate control-plane name or custom domain, `additionalProperties: false`
bodies, `meta.page` pagination (page[size] default 10) and deepObject filters, core entities with offset
pagination and their own error shapes.

Custom domains move created -> initializing -> ready, or -> error with `state_metadata.reason` when the domain's
CNAME (looked up through the resolver at `resolver`, never the system's) does not reach the control plane's
gateway hostname. The lifecycle advances one step per GET of the domain (list or by id) after the response was
built, or explicitly with `step()`; DELETE moves a domain to terminating and the next GET removes it. Serverless
domains are validated once: `/online-status` keeps the verdict of that one validation.

Faults on demand: `inject(status, times=…, retry_after=…)` answers the next matching requests with a 429 (Kong's
rate-limiting body and headers) or a 5xx; `delay` makes every answer slow.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dns.exception
import dns.name
import dns.resolver

PROBLEMS = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "konnect" / "problems.json").read_text())
VALID_TOKEN = "kpat_" + "E" * 46  # the shape of a real personal access token; never a real one
GEOS = ("us", "eu", "au", "me", "in", "sg")
CLUSTER_TYPES = ("CLUSTER_TYPE_CONTROL_PLANE", "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER",
                 "CLUSTER_TYPE_CONTROL_PLANE_GROUP", "CLUSTER_TYPE_SERVERLESS",
                 "CLUSTER_TYPE_KAFKA_NATIVE_EVENT_PROXY", "CLUSTER_TYPE_SERVERLESS_V1")
GATEWAY_SUFFIX = "kongcloud.dev"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class _Reply(Exception):
    """Raised inside a handler to answer with this status and body."""

    def __init__(self, status: int, body: Any = None, *, content_type: str = "application/problem+json",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}


def problem(status: int, detail: str | None = None, invalid: list[dict[str, Any]] | None = None) -> _Reply:
    body = dict(PROBLEMS[str(status)])
    body["instance"] = f"konnect:trace:{secrets.randbelow(10**18)}"
    if detail:
        body["detail"] = detail
    if invalid is not None:
        body["invalid_parameters"] = invalid
    return _Reply(status, body)


def core_error(status: int, message: str, field_name: str = "") -> _Reply:
    """The core entities' gRPC-style error (e.g. a duplicate name is 400 code 3, not 409)."""
    details = [{"@type": "type.googleapis.com/kong.admin.model.v1.ErrorDetail", "type": "ERROR_TYPE_FIELD",
                "field": field_name, "messages": [message]}] if field_name else []
    return _Reply(status, {"code": 3, "message": message, "details": details}, content_type="application/json")


@dataclass
class Fault:
    status: int
    times: int
    retry_after: str | None = None
    method: str | None = None
    path: str | None = None  # a prefix of the request path

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    status: int
    authorization: str = field(repr=False, default="")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class KonnectEmulator:
    """Threaded HTTP server emulating the Konnect endpoints above. Use as a context manager; `url` is the base."""

    def __init__(self, *, resolver: tuple[str, int] | None = None, tokens: tuple[str, ...] = (VALID_TOKEN,),
                 step_on_get: bool = True, default_page_size: int = 10, prefix: str | None = None) -> None:
        self.resolver = resolver
        self.prefix = prefix  # every new control plane's endpoint prefix (None: random 10-hex)
        self.tokens = set(tokens)
        self.step_on_get = step_on_get
        self.default_page_size = default_page_size
        self.delay = 0.0
        self.next_prefixes: list[str] = []  # control-plane prefixes to hand out next (else random 10-hex)
        self.control_planes: dict[str, dict[str, Any]] = {}
        self.configurations: dict[str, dict[str, Any]] = {}
        self.domains: dict[str, dict[str, Any]] = {}
        self.online: dict[str, dict[str, str]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.plugins: dict[str, dict[str, Any]] = {}
        self.requests: list[Seen] = []
        self.faults: list[Fault] = []
        self._offset = timedelta()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> KonnectEmulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="konnect-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KonnectEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test controls -----------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock (created_at/updated_at of later changes) forward."""
        self._offset += timedelta(seconds=seconds)

    def inject(self, status: int, *, times: int = 1, retry_after: str | None = None, method: str | None = None,
               path: str | None = None) -> None:
        """Answer the next `times` matching requests with `status` (429: Kong's rate-limit reply)."""
        with self._lock:
            self.faults.append(Fault(status, times, retry_after, method, path))

    def gateway_host(self, cp: dict[str, Any]) -> str:
        """The hostname a custom domain of this control plane must CNAME to (what the Konnect UI shows)."""
        prefix = cp["config"]["control_plane_endpoint"].split("//", 1)[1].split(".", 1)[0]
        if cp["config"]["cluster_type"] == "CLUSTER_TYPE_SERVERLESS_V1":
            return f"{prefix}.{cp['_geo']}.serverless.gateways.konggateway.com"
        return f"{prefix}.{GATEWAY_SUFFIX}"

    def domain(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return next((d for d in self.domains.values() if d["domain"] == name), None)

    def step(self, name: str | None = None, times: int = 1) -> None:
        """Advance one domain's lifecycle (or every domain's) by `times` steps."""
        with self._lock:
            for _ in range(times):
                for d in list(self.domains.values()):
                    if name is None or d["domain"] == name:
                        self._step_domain(d)

    def set_domain(self, name: str, **fields: Any) -> None:
        """Overwrite fields of a stored domain (e.g. created_at, to show a long-pending domain)."""
        with self._lock:
            d = self.domain(name)
            assert d is not None, f"no domain {name}"
            d.update(fields)

    def count(self, method: str, path_prefix: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path.startswith(path_prefix))

    # -- domain lifecycle --------------------------------------------------------------------------------------

    def _step_domain(self, d: dict[str, Any]) -> None:
        state = d["state"]
        if state == "created":
            self._set_state(d, "initializing")
        elif state == "initializing":
            reason = self._validate(d)
            if reason is None:
                self._set_state(d, "ready", {})
                self.online[d["id"]] = {"cname": "verified", "ssl": "verified"}
            else:
                self._set_state(d, "error", {"reported_status": "INVALID", "reason": reason})
                self.online[d["id"]] = {"cname": "unverified", "ssl": "unverified"}
        elif state == "terminating":
            self.domains.pop(d["id"], None)
            self.online.pop(d["id"], None)

    def _set_state(self, d: dict[str, Any], state: str, metadata: dict[str, str] | None = None) -> None:
        d["state"] = state
        if metadata is not None:
            d["state_metadata"] = metadata
        d["entity_version"] += 1
        d["updated_at"] = _iso(self.now())

    def _validate(self, d: dict[str, Any]) -> str | None:
        """Konnect's one-time validation: the CNAME must reach the gateway host and CAA must allow Let's Encrypt."""
        cp = self.control_planes.get(d["control_plane_id"])
        if cp is None:
            return "control plane not found"
        want = self.gateway_host(cp)
        if self.resolver is None:
            return "DNS validation unavailable"
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.resolver[0]]
        resolver.port = self.resolver[1]
        resolver.lifetime = 3.0
        name = d["domain"]
        try:
            answer = resolver.resolve(name, "CNAME", raise_on_no_answer=False)
            target = str(answer.rrset[0].target).rstrip(".") if answer.rrset else None
            chain = resolver.resolve(name, "A", raise_on_no_answer=False).chaining_result.cnames
            targets = {str(r[0].target).rstrip(".").lower() for r in chain}
        except dns.resolver.NXDOMAIN:
            return f"no CNAME record found for '{name}.'; expected a CNAME to '{want}.'"
        except dns.exception.DNSException as exc:
            return f"DNS lookup of '{name}.' failed: {type(exc).__name__}"
        if want not in targets:
            if target is None:
                return f"no CNAME record found for '{name}.'; expected a CNAME to '{want}.'"
            return f"CNAME points to '{target}.' instead of '{want}.'"
        if not self._caa_allows(resolver, name):
            return f"CAA record for '{name}.' prevents issuance by letsencrypt.org"
        return None

    @staticmethod
    def _caa_allows(resolver: dns.resolver.Resolver, name: str) -> bool:
        labels = name.split(".")
        for i in range(len(labels) - 1):
            try:
                answer = resolver.resolve(".".join(labels[i:]), "CAA", raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                continue
            except dns.exception.DNSException:
                return False
            issue = [r for r in (answer.rrset or []) if r.tag.decode().lower() == "issue"]
            if answer.rrset:
                return not issue or any(r.value.decode().split(";")[0].strip() == "letsencrypt.org" for r in issue)
        return True

    # -- request dispatch --------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], auth: str,
               body: Any) -> tuple[int, Any, str, dict[str, str]]:
        try:
            with self._lock:
                fault = next((f for f in self.faults if f.matches(method, path)), None)
                if fault is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
            if fault is not None:
                raise self._fault_reply(fault)
            core = "/core-entities/" in path
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            if token not in self.tokens:
                if core:
                    raise _Reply(401, PROBLEMS["core_401"], content_type="application/json")
                raise problem(401)
            with self._lock:
                out, status = self._route(method, path, query, body)
            return status, out, "application/json", {}
        except _Reply as reply:
            return reply.status, reply.body, reply.content_type, reply.headers

    def _fault_reply(self, fault: Fault) -> _Reply:
        if fault.status == 429:
            headers = {"RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": "48",
                       "X-RateLimit-Limit-Minute": "3000", "X-RateLimit-Remaining-Minute": "0",
                       "Via": "kong-enterprise-edition"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            # Kong's rate-limiting plugin answers with its own JSON body, not problem+json.
            return _Reply(429, PROBLEMS["rate_limited"], content_type="application/json; charset=utf-8",
                          headers=headers)
        if str(fault.status) in PROBLEMS:
            return problem(fault.status)
        return _Reply(fault.status, {"status": fault.status, "title": "Error",
                                     "instance": "konnect:trace:1"})

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[Any, int]:
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["v2"]:
            raise problem(404)
        rest = parts[1:]
        if rest[:1] == ["control-planes"]:
            if len(rest) >= 3 and rest[2] == "core-entities":
                return self._core(method, rest[1], rest[3:], q, body)
            return self._control_planes(method, rest[1:], q, body)
        if rest[:2] == ["cloud-gateways", "configurations"]:
            return self._configurations(method, rest[2:], q, body)
        if rest[:2] == ["cloud-gateways", "custom-domains"]:
            return self._custom_domains(method, rest[2:], q, body)
        raise problem(404)

    # -- control planes ----------------------------------------------------------------------------------------

    def _control_planes(self, method: str, rest: list[str], q: dict[str, str], body: Any) -> Any:
        if not rest:
            if method == "GET":
                items = [_public(cp) for cp in self.control_planes.values()]
                return self._page(_filtered(items, q, {"cluster_type": "config.cluster_type"}), q)
            if method == "POST":
                return self._create_cp(body)
            raise problem(404)
        cp = self.control_planes.get(rest[0])
        if cp is None or len(rest) > 1:
            raise problem(404, "The requested control plane was not found.")
        if method == "GET":
            return _public(cp), 200
        if method == "DELETE":
            del self.control_planes[rest[0]]
            return None, 204
        raise problem(404)

    def _create_cp(self, body: Any) -> Any:
        allowed = {"name", "description", "cluster_type", "auth_type", "cloud_gateway", "proxy_urls", "labels"}
        _check_object(body, allowed, required=("name",))
        invalid = []
        if not isinstance(body["name"], str) or not 2 <= len(body["name"]) <= 256:
            invalid.append({"field": "name", "rule": "min_length", "minimum": 2,
                            "reason": "name must be 2-256 characters"})
        if "cluster_type" in body and body["cluster_type"] not in CLUSTER_TYPES:
            invalid.append({"field": "cluster_type", "rule": "enum", "choices": list(CLUSTER_TYPES),
                            "reason": f"cluster_type must be one of {', '.join(CLUSTER_TYPES)}"})
        if "auth_type" in body and body["auth_type"] not in ("pinned_client_certs", "pki_client_certs"):
            invalid.append({"field": "auth_type", "rule": "enum", "choices": ["pinned_client_certs",
                                                                              "pki_client_certs"],
                            "reason": "auth_type must be one of pinned_client_certs, pki_client_certs"})
        if invalid:
            raise problem(400, "Invalid Parameters", invalid)
        if any(cp["name"] == body["name"] for cp in self.control_planes.values()):
            raise problem(409, "Control Plane with provided name already exists.")
        prefix = self.next_prefixes.pop(0) if self.next_prefixes else (self.prefix or secrets.token_hex(5))
        now = _iso(self.now())
        cp_id = str(uuid.uuid4())
        cp = {
            "id": cp_id, "name": body["name"], "description": body.get("description", ""),
            "labels": body.get("labels", {}),
            "config": {
                "control_plane_endpoint": f"https://{prefix}.us.cp0.konghq.com",
                "telemetry_endpoint": f"https://{prefix}.us.tp0.konghq.com",
                "cluster_type": body.get("cluster_type", "CLUSTER_TYPE_CONTROL_PLANE"),
                "auth_type": body.get("auth_type", "pinned_client_certs"),
                "cloud_gateway": bool(body.get("cloud_gateway", False)),
                "proxy_urls": body.get("proxy_urls", []),
            },
            "created_at": now, "updated_at": now, "_geo": "us",
        }
        self.control_planes[cp_id] = cp
        return _public(cp), 201

    # -- configurations ----------------------------------------------------------------------------------------

    def _configurations(self, method: str, rest: list[str], q: dict[str, str], body: Any) -> Any:
        if rest:
            conf = self.configurations.get(rest[0])
            if conf is None or method != "GET":
                raise problem(404)
            self._step_configuration(conf)
            return conf, 200
        if method == "GET":
            items = list(self.configurations.values())
            for conf in items:
                self._step_configuration(conf)
            return self._page(_filtered(items, q), q)
        if method != "PUT":
            raise problem(404)
        allowed = {"control_plane_id", "control_plane_geo", "version", "dataplane_groups", "api_access", "kind"}
        _check_object(body, allowed, required=("control_plane_id", "control_plane_geo", "dataplane_groups"))
        invalid = []
        kind = body.get("kind", "dedicated.v0")
        if kind not in ("dedicated.v0", "serverless.v1"):
            invalid.append({"field": "kind", "rule": "enum", "choices": ["dedicated.v0", "serverless.v1"],
                            "reason": "kind must be one of the following values: dedicated.v0, serverless.v1"})
        if body["control_plane_geo"] not in GEOS:
            invalid.append({"field": "control_plane_geo", "rule": "enum", "choices": list(GEOS),
                            "reason": f"control_plane_geo must be one of {', '.join(GEOS)}"})
        if not _UUID.match(str(body["control_plane_id"])):
            invalid.append({"field": "control_plane_id", "rule": "is_uuid", "reason": "must be a UUID"})
        groups = body["dataplane_groups"]
        if not isinstance(groups, list) or not groups:
            invalid.append({"field": "dataplane_groups", "rule": "min_items", "minimum": 1,
                            "reason": "dataplane_groups must have at least 1 item"})
            groups = []
        for i, g in enumerate(groups):
            if not isinstance(g, dict) or "provider" not in g or "region" not in g:
                invalid.append({"field": f"dataplane_groups[{i}]", "rule": "required",
                                "reason": "provider and region are required"})
                continue
            if kind == "serverless.v1" and g["provider"] != "aws":
                invalid.append({"field": f"dataplane_groups[{i}].provider", "rule": "enum", "choices": ["aws"],
                                "reason": "provider must be aws for serverless.v1"})
            if kind == "serverless.v1" and set(g) - {"provider", "region", "environment"}:
                invalid.append({"field": f"dataplane_groups[{i}]", "rule": "unknown_property",
                                "reason": "cloud_gateway_network_id and autoscale must be omitted for "
                                          "serverless.v1"})
        if kind == "serverless.v1" and "version" in body:
            invalid.append({"field": "version", "rule": "unknown_property",
                            "reason": "version must be omitted for serverless.v1"})
        if invalid:
            raise problem(400, "Invalid Parameters", invalid)
        if body["control_plane_id"] not in self.control_planes:
            raise problem(404, "The requested control plane was not found.")
        existing = next((c for c in self.configurations.values()
                         if c["control_plane_id"] == body["control_plane_id"]
                         and c["control_plane_geo"] == body["control_plane_geo"]), None)
        wanted = [{"provider": g["provider"], "region": g["region"]} for g in groups]
        if existing is not None:
            have = [{"provider": g["provider"], "region": g["region"]} for g in existing["dataplane_groups"]]
            if have == wanted and existing.get("kind") == kind:
                raise problem(409, "Configurations are identical; no changes were applied.")
        now = _iso(self.now())
        conf = existing or {"id": str(uuid.uuid4()), "created_at": now, "entity_version": 0}
        conf.update({
            "control_plane_id": body["control_plane_id"], "control_plane_geo": body["control_plane_geo"],
            "kind": kind, "api_access": body.get("api_access", "private+public"),
            "dataplane_group_config": wanted,
            "dataplane_groups": [{"id": str(uuid.uuid4()), **g, "state": "initializing", "created_at": now,
                                  "updated_at": now} for g in wanted],
            "entity_version": conf["entity_version"] + 1, "updated_at": now,
        })
        self.configurations[conf["id"]] = conf
        return conf, 200

    def _step_configuration(self, conf: dict[str, Any]) -> None:
        if not self.step_on_get:
            return
        for g in conf["dataplane_groups"]:
            if g["state"] == "initializing":
                g["state"] = "ready"
                g["updated_at"] = _iso(self.now())

    # -- custom domains ----------------------------------------------------------------------------------------

    def _custom_domains(self, method: str, rest: list[str], q: dict[str, str], body: Any) -> Any:
        if not rest:
            if method == "GET":
                result = self._page(_filtered([_public(d) for d in self.domains.values()], q), q)
                if self.step_on_get:
                    for item in result[0]["data"]:
                        self._step_domain(self.domains[item["id"]])
                return result
            if method == "POST":
                return self._create_domain(body)
            raise problem(404)
        d = self.domains.get(rest[0])
        if d is None:
            raise problem(404, "Custom domain not found")
        if rest[1:] == ["online-status"] and method == "GET":
            return dict(self.online.get(d["id"], {"cname": "unverified", "ssl": "unverified"})), 200
        if rest[1:]:
            raise problem(404)
        if method == "GET":
            out = _public(d)
            if self.step_on_get:
                self._step_domain(d)
            return out, 200
        if method == "DELETE":
            if d["state"] != "terminating":
                self._set_state(d, "terminating")
            return None, 204
        raise problem(404)

    def _create_domain(self, body: Any) -> Any:
        _check_object(body, {"control_plane_id", "control_plane_geo", "domain", "kind"},
                      required=("control_plane_id", "control_plane_geo", "domain"))
        invalid = []
        if not isinstance(body["domain"], str) or not body["domain"]:
            invalid.append({"field": "domain", "rule": "min_length", "minimum": 1,
                            "reason": "domain must be longer than or equal to 1 characters"})
        if body["control_plane_geo"] not in GEOS:
            invalid.append({"field": "control_plane_geo", "rule": "enum", "choices": list(GEOS),
                            "reason": f"control_plane_geo must be one of {', '.join(GEOS)}"})
        if body.get("kind", "dedicated.v0") not in ("dedicated.v0", "serverless.v1"):
            invalid.append({"field": "kind", "rule": "enum", "choices": ["dedicated.v0", "serverless.v1"],
                            "reason": "kind must be one of dedicated.v0, serverless.v1"})
        if invalid:
            raise problem(400, "Invalid Parameters", invalid)
        if body["control_plane_id"] not in self.control_planes:
            raise problem(404, "The requested control plane was not found.")
        if any(d["domain"] == body["domain"] for d in self.domains.values()):
            raise problem(409, f"Custom domain [{body['domain']}] already exists.")
        now = _iso(self.now())
        d = {"id": str(uuid.uuid4()), "control_plane_id": body["control_plane_id"],
             "control_plane_geo": body["control_plane_geo"], "domain": body["domain"],
             "certificate_id": None, "sni_id": None, "state": "created", "state_metadata": {},
             "entity_version": 1, "created_at": now, "updated_at": now, "kind": body.get("kind", "dedicated.v0")}
        self.domains[d["id"]] = d
        return _public(d), 201

    # -- core entities -----------------------------------------------------------------------------------------

    def _core(self, method: str, cp_id: str, rest: list[str], q: dict[str, str], body: Any) -> Any:
        if cp_id not in self.control_planes:
            raise _Reply(404, PROBLEMS["core_404"], content_type="application/json")
        if rest[:1] == ["services"]:
            if len(rest) == 1:
                if method == "GET":
                    return self._core_list([s for s in self.services.values() if s["_cp"] == cp_id], q)
                if method == "POST":
                    return self._core_create(self.services, cp_id, body, service=None, kind="service")
            service = self.services.get(rest[1]) if len(rest) > 1 else None
            if service is None or service["_cp"] != cp_id:
                raise _Reply(404, PROBLEMS["core_404"], content_type="application/json")
            if len(rest) == 2 and method == "GET":
                return _public(service), 200
            if rest[2:] == ["plugins"]:
                if method == "GET":
                    items = [p for p in self.plugins.values()
                             if p["_cp"] == cp_id and (p.get("service") or {}).get("id") == service["id"]]
                    return self._core_list(items, q)
                if method == "POST":
                    return self._core_create(self.plugins, cp_id, body, service=service["id"], kind="plugin")
        if rest[:1] == ["plugins"]:
            if len(rest) == 1:
                if method == "GET":
                    return self._core_list([p for p in self.plugins.values() if p["_cp"] == cp_id], q)
                if method == "POST":
                    return self._core_create(self.plugins, cp_id, body, service=None, kind="plugin")
            plugin = self.plugins.get(rest[1])
            if method == "PUT" and len(rest) == 2:
                return self._core_put_plugin(cp_id, rest[1], body)
            if plugin is None or plugin["_cp"] != cp_id:
                raise _Reply(404, PROBLEMS["core_404"], content_type="application/json")
            if method == "GET":
                return _public(plugin), 200
            if method == "DELETE":
                del self.plugins[rest[1]]
                return None, 204
        raise _Reply(404, PROBLEMS["core_404"], content_type="application/json")

    def _core_list(self, items: list[dict[str, Any]], q: dict[str, str]) -> Any:
        size = int(q.get("size", 100))
        start = int(q.get("offset", 0) or 0)
        page = items[start:start + size]
        more = start + size < len(items)
        return {"data": [_public(i) for i in page], "next": None, "offset": str(start + size) if more else None}, \
            200

    def _core_create(self, store: dict[str, dict[str, Any]], cp_id: str, body: Any, *, service: str | None,
                     kind: str) -> Any:
        if not isinstance(body, dict):
            raise core_error(400, "request body must be a JSON object")
        if kind == "plugin":
            if not body.get("name"):
                raise core_error(400, "schema violation (name: required field missing)", "name")
            if service is not None:
                body = {**body, "service": {"id": service}}
            scope = (body.get("service") or {}).get("id")
            if any(p["_cp"] == cp_id and p["name"] == body["name"] and (p.get("service") or {}).get("id") == scope
                   for p in store.values()):
                raise core_error(400, f"UNIQUE violation detected on '{{service={{id=\"{scope}\"}},"
                                      f"name=\"{body['name']}\"}}'", "name")
        elif not body.get("host") and not body.get("url"):
            raise core_error(400, "schema violation (host: required field missing)", "host")
        now = int(self.now().timestamp())
        item = {"id": str(uuid.uuid4()), **body, "created_at": now, "updated_at": now, "_cp": cp_id}
        if kind == "plugin":
            item.setdefault("enabled", True)
            item.setdefault("config", {})
            item["config"] = _request_transformer_defaults(item["config"]) \
                if item["name"] == "request-transformer" else item["config"]
        store[item["id"]] = item
        return _public(item), 201

    def _core_put_plugin(self, cp_id: str, plugin_id: str, body: Any) -> Any:
        if not isinstance(body, dict) or not body.get("name"):
            raise core_error(400, "schema violation (name: required field missing)", "name")
        old = self.plugins.get(plugin_id)
        now = int(self.now().timestamp())
        item = {**body, "id": plugin_id, "created_at": old["created_at"] if old else now, "updated_at": now,
                "_cp": cp_id}
        item.setdefault("enabled", True)
        if item["name"] == "request-transformer":
            item["config"] = _request_transformer_defaults(item.get("config") or {})
        self.plugins[plugin_id] = item
        return _public(item), 200

    # -- paging ------------------------------------------------------------------------------------------------

    def _page(self, items: list[dict[str, Any]], q: dict[str, str]) -> tuple[Any, int]:
        try:
            size = int(q.get("page[size]", self.default_page_size))
            number = int(q.get("page[number]", 1))
        except ValueError:
            raise problem(400, "Invalid Parameters", [{"field": "page", "rule": "is_integer",
                                                        "reason": "page[size] and page[number] must be integers"}]) \
                from None
        if size < 1 or number < 1:
            raise problem(400, "Invalid Parameters", [{"field": "page", "rule": "min", "minimum": 1,
                                                        "reason": "page[size] and page[number] must be >= 1"}])
        start = (number - 1) * size
        return {"meta": {"page": {"number": number, "size": size, "total": len(items)}},
                "data": items[start:start + size]}, 200


def _request_transformer_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Kong fills every request-transformer list with [] (schema defaults), as Konnect returns it."""
    out: dict[str, Any] = {"http_method": config.get("http_method")}
    for op in ("remove", "rename", "replace", "add", "append"):
        given = config.get(op) or {}
        out[op] = {k: list(given.get(k) or []) for k in ("headers", "querystring", "body")}
        if op == "replace":
            out[op]["uri"] = given.get("uri")
    return out


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _check_object(body: Any, allowed: set[str], required: tuple[str, ...]) -> None:
    if not isinstance(body, dict):
        raise problem(400, "Request cannot be empty", [{"field": "body", "rule": "is_object",
                                                        "reason": "the request body must be a JSON object"}])
    invalid = [{"field": k, "rule": "unknown_property", "reason": f"property {k} should not exist"}
               for k in sorted(set(body) - allowed)]
    invalid += [{"field": k, "rule": "required", "reason": "is a required field"} for k in required if k not in body]
    if invalid:
        raise problem(400, "Request contains unknown property" if any(i["rule"] == "unknown_property"
                                                                     for i in invalid) else "Invalid Parameters",
                      invalid)


_FILTER = re.compile(r"^filter\[([a-z_.]+)\](?:\[([a-z]+)\])?$")


def _filtered(items: list[dict[str, Any]], q: dict[str, str], aliases: dict[str, str] | None = None) -> list[Any]:
    """The deepObject filters of the platform APIs: filter[f]=v, filter[f][eq|neq|contains|oeq|ocontains]=v."""
    out = items
    for key, value in q.items():
        match = _FILTER.match(key)
        if not match:
            continue
        fname, op = match.group(1), match.group(2) or "eq"
        path = (aliases or {}).get(fname, fname).split(".")
        if op not in ("eq", "neq", "contains", "oeq", "ocontains"):
            raise problem(400, "Invalid Parameters", [{"field": key, "rule": "invalid",
                                                       "reason": f"unknown filter operator {op}"}])
        out = [i for i in out if _matches(op, _get(i, path), value)]
    return out


def _get(item: dict[str, Any], path: list[str]) -> str:
    cur: Any = item
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def _matches(op: str, have: str, value: str) -> bool:
    values = value.split(",")
    if op == "eq":
        return have == value
    if op == "neq":
        return have != value
    if op == "contains":
        return value in have
    if op == "oeq":
        return have in values
    return any(v in have for v in values)


class _Handler(BaseHTTPRequestHandler):
    emu: KonnectEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read emu.requests instead
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = _BadJson
        auth = self.headers.get("Authorization", "")
        if body is _BadJson:
            status, out, ctype, headers = 400, problem(400, "Request body is not valid JSON").body, \
                "application/problem+json", {}
        else:
            status, out, ctype, headers = self.emu.handle(self.command, split.path, query, auth, body)
        self.emu.requests.append(Seen(self.command, split.path, query, status, auth))
        if self.emu.delay:
            time.sleep(self.emu.delay)
        data = b"" if out is None or status == 204 else json.dumps(out).encode()
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _BadJson:
    pass


def iter_domains(emu: KonnectEmulator) -> Iterator[dict[str, Any]]:
    with emu._lock:
        yield from list(emu.domains.values())
