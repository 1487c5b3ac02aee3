"""`kdiag konnect …`: thin, idempotent provisioning of a serverless gateway and its custom domains.

Every command checks its arguments (domain names, UUIDs, regions) and KONNECT_TOKEN before it sends anything,
exits 0 when the wanted state holds afterwards (also when it already held: a second identical run changes
nothing), and prints either lines for people or, with `--format json`, one JSON document. Failures are
KdiagErrors, which `kdiag.cli.main` prints as one line `kdiag: error: …` with exit 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from kdiag.errors import UsageError
from kdiag.konnect.regions import DEFAULT_TIMEOUT, REGIONS

if TYPE_CHECKING:
    from kdiag.konnect.client import KonnectClient

# httpx, dnspython and friends are imported inside the commands, so `kdiag --version` stays fast.

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
DOMAIN_KIND = "serverless.v1"  # CustomDomainKind for serverless gateways (TF provider 3.12.0)
CONFIG_KIND = "serverless.v1"  # ConfigurationKind in the public cloud-gateways spec
DP_PROVIDER = "aws"  # ServerlessV1ProviderName allows only aws
SECRET_ENV = "KDIAG_BACKEND_SECRET"
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token


@dataclass(frozen=True)
class Settings:
    region: str
    konnect_url: str | None
    timeout: float
    debug: bool


def _konnect_options(fn: Any) -> Any:
    """--region/--konnect-url/--timeout/--debug, accepted on the group and on each command (command wins)."""
    fn = click.option("--debug", is_flag=True, default=None,
                      help="Show each request and response on stderr (Authorization redacted).")(fn)
    fn = click.option("--timeout", type=click.FloatRange(min=0.1, max=300), default=None, metavar="SECONDS",
                      help=f"Bound on each request [default: {DEFAULT_TIMEOUT:g}].")(fn)
    fn = click.option("--konnect-url", metavar="URL", envvar="KONNECT_URL", default=None,
                      help="Send every request here instead of the regional and global Konnect hosts "
                           "(staging, tests; also KONNECT_URL).")(fn)
    fn = click.option("--region", type=click.Choice(REGIONS), default=None,
                      help="Konnect region of the control plane (regional APIs) [default: us].")(fn)
    return fn


def _format_option(fn: Any) -> Any:
    return click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                        show_default=True, help="Output format.")(fn)


def _settings(**given: Any) -> Settings:
    ctx = click.get_current_context()
    group: dict[str, Any] = (ctx.find_object(dict) or {}).get("konnect_group", {})

    def pick(key: str, default: Any) -> Any:
        if given.get(key) is not None:
            return given[key]
        return group.get(key) if group.get(key) is not None else default

    return Settings(region=pick("region", "us"), konnect_url=pick("konnect_url", None),
                    timeout=float(pick("timeout", DEFAULT_TIMEOUT)), debug=bool(pick("debug", False)))


def _client(settings: Settings) -> KonnectClient:
    """The client, after KONNECT_TOKEN's shape was checked (nothing has been sent yet)."""
    from kdiag.konnect.client import KonnectClient, check_token, token_from_env

    token = check_token(token_from_env())

    def debug(line: str) -> None:
        click.echo(f"kdiag: debug: {line}", err=True)

    return KonnectClient(token, region=settings.region, base_url=settings.konnect_url,
                         timeout=settings.timeout, debug=debug if settings.debug else None)


def _uuid(value: str, option: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a UUID (e.g. 0949471e-b759-45ba-87ab-ee63fb781388)") from None


def _domain_name(raw: str) -> str:
    from kdiag.names import InvalidName, normalize_domain

    try:
        normalized = normalize_domain(raw)
    except InvalidName as exc:
        raise UsageError(str(exc)) from None
    for text in normalized.notes:
        click.echo(f"kdiag: note: {text}", err=True)
    return normalized.name


def _emit(fmt: str, doc: dict[str, Any], lines: list[str]) -> None:
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(lines))


# -- the group ---------------------------------------------------------------------------------------------------


@click.group(context_settings=CONTEXT_SETTINGS)
@_konnect_options
@click.pass_context
def konnect(ctx: click.Context, region: str | None, konnect_url: str | None, timeout: float | None,
            debug: bool | None) -> None:
    """Provision a Konnect serverless gateway and its custom domains (needs KONNECT_TOKEN).

    \b
    A typical setup:
      kdiag konnect cp create my-gateway
      kdiag konnect dp create --control-plane CP_ID
      kdiag konnect domain add my.example.com --control-plane CP_ID
      (create the CNAME record it prints), then: kdiag domain my.example.com

    Every command is idempotent, takes --format json, and exits 0 on success, 3 on any error.
    """
    obj = ctx.ensure_object(dict)
    obj["konnect_group"] = {"region": region, "konnect_url": konnect_url, "timeout": timeout, "debug": debug}


# -- control planes ------------------------------------------------------------------------------------------------


@konnect.group(context_settings=CONTEXT_SETTINGS)
def cp() -> None:
    """Serverless control planes."""


@cp.command("create", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--description", default=None, help="Free text, at most 2048 characters.")
@click.option("--v1", "v1", is_flag=True,
              help="Create a Serverless V1 control plane (CLUSTER_TYPE_SERVERLESS_V1, cloud_gateway true; "
                   "US and EU organisations only) instead of the legacy serverless type.")
@_konnect_options
@_format_option
def cp_create(name: str, description: str | None, v1: bool, fmt: str, **options: Any) -> None:
    """Create the serverless control plane NAME, or reuse the one of that name."""
    name = name.strip()
    if not 2 <= len(name) <= 256:
        raise UsageError(f"control plane name must be 2 to 256 characters (got {len(name)})")
    if description is not None and len(description) > 2048:
        raise UsageError(f"--description must be at most 2048 characters (got {len(description)})")
    from kdiag.konnect.errors import KonnectConflict, KonnectError
    from kdiag.konnect.gateway import SERVERLESS_V0, SERVERLESS_V1, derive_target

    cluster_type = SERVERLESS_V1 if v1 else SERVERLESS_V0
    settings = _settings(**options)
    with _client(settings) as client:
        existing = client.list_control_planes(name=name)
        action = "reused"
        if existing:
            cp_doc = existing[0]
        else:
            # The documented serverless bodies (V0 legacy, V1): cloud_gateway differs between the two.
            body: dict[str, Any] = {"name": name, "cluster_type": cluster_type, "cloud_gateway": v1,
                                    "auth_type": "pinned_client_certs"}
            if description is not None:
                body["description"] = description
            try:
                cp_doc = client.create_control_plane(body)
                action = "created"
            except KonnectConflict:
                # Created by someone else between our list and our create: reuse it like any existing one.
                again = client.list_control_planes(name=name)
                if not again:
                    raise
                cp_doc = again[0]
    have = (cp_doc.get("config") or {}).get("cluster_type")
    if action == "reused" and have != cluster_type:
        raise KonnectError(f"control plane {name!r} already exists ({cp_doc.get('id')}) but is {have}, not "
                           f"{cluster_type}; choose another name")
    derived = derive_target(cp_doc, settings.region)
    doc = {"action": action, "control_plane": cp_doc, "gateway_hostname": derived.target,
           "gateway_hostname_source": derived.how}
    verb = "created" if action == "created" else "already exists; reusing it"
    lines = [f"control plane {name!r} {verb}: {cp_doc.get('id')} ({have}, {settings.region})"]
    if derived.target:
        lines.append(f"gateway hostname (derived; confirm in Konnect): {derived.target}")
    lines.append(f"next: kdiag konnect dp create --control-plane {cp_doc.get('id')} --region {settings.region}")
    _emit(fmt, doc, lines)


# -- data planes ---------------------------------------------------------------------------------------------------


@konnect.group(context_settings=CONTEXT_SETTINGS)
def dp() -> None:
    """The hosted serverless data plane of a control plane."""


@dp.command("create", context_settings=CONTEXT_SETTINGS)
@click.option("--control-plane", "control_plane", required=True, metavar="ID", help="Control plane UUID.")
@click.option("--dataplane-region", metavar="REGION", default=None,
              help="Where the data plane runs (availability.json serverless_v1_providers); default: --region.")
@_konnect_options
@_format_option
def dp_create(control_plane: str, dataplane_region: str | None, fmt: str, **options: Any) -> None:
    """Create (or keep) the hosted serverless data plane of a control plane, then show its state."""
    cp_id = _uuid(control_plane, "--control-plane")
    settings = _settings(**options)
    dp_region = (dataplane_region or settings.region).strip()
    if not re.match(r"^[a-z0-9-]{2,32}$", dp_region):
        raise UsageError(f"--dataplane-region {dp_region!r} is not a region name (e.g. us)")
    from kdiag.konnect.errors import KonnectConflict

    groups = [{"provider": DP_PROVIDER, "region": dp_region}]
    body: dict[str, Any] = {"control_plane_id": cp_id, "control_plane_geo": settings.region, "kind": CONFIG_KIND,
                            "dataplane_groups": groups}
    with _client(settings) as client:
        _get_cp(client, cp_id, settings.region)
        try:
            conf = client.put_configuration(body)
            action = "applied"
        except KonnectConflict as exc:
            # Konnect answers 409 when the configuration is identical to the current one: nothing to do. Any
            # other conflict is real, so check that what is there is what was asked for.
            found = [c for c in client.list_configurations(cp_id) if c.get("control_plane_geo") == settings.region]
            if not found or not _same_groups(found[0], groups):
                raise exc from None
            conf = found[0]
            action = "unchanged"
    groups = conf.get("dataplane_groups") or []
    states = ", ".join(f"{g.get('provider')}/{g.get('region')} {g.get('state')}" for g in groups) or "no groups"
    doc = {"action": action, "configuration": conf}
    verb = "applied" if action == "applied" else "already in place; nothing to do"
    lines = [f"serverless data plane for control plane {cp_id} {verb}: {states}",
             f"next: kdiag konnect domain add NAME --control-plane {cp_id} --region {settings.region}"]
    _emit(fmt, doc, lines)


def _same_groups(conf: dict[str, Any], wanted: list[dict[str, str]]) -> bool:
    have = sorted((g.get("provider"), g.get("region")) for g in conf.get("dataplane_groups") or [])
    return have == sorted((g["provider"], g["region"]) for g in wanted)


def _get_cp(client: KonnectClient, cp_id: str, region: str) -> dict[str, Any]:
    from kdiag.konnect.errors import KonnectError, KonnectNotFound

    try:
        return client.get_control_plane(cp_id, region)
    except KonnectNotFound:
        raise KonnectError(f"Konnect has no control plane {cp_id} in region {region} (check --control-plane "
                           "and --region)") from None


# -- custom domains ------------------------------------------------------------------------------------------------


@konnect.group(context_settings=CONTEXT_SETTINGS)
def domain() -> None:
    """Custom domains of serverless gateways."""


@domain.command("add", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--control-plane", "control_plane", required=True, metavar="ID", help="Control plane UUID.")
@click.option("--poll-interval", type=float, default=2.0, hidden=True)
@click.option("--wait-timeout", type=click.FloatRange(min=0, max=3600), default=120.0, show_default=True,
              metavar="SECONDS", help="How long to wait for a domain being removed to go away.")
@_konnect_options
@_format_option
def domain_add(name: str, control_plane: str, poll_interval: float, wait_timeout: float, fmt: str,
               **options: Any) -> None:
    """Add NAME to a control plane; print the CNAME record to create and the next step."""
    from kdiag.konnect.errors import KonnectConflict, KonnectError

    name = _domain_name(name)
    cp_id = _uuid(control_plane, "--control-plane")
    settings = _settings(**options)
    with _client(settings) as client:
        existing = client.find_custom_domain(name)
        if existing is not None and existing.get("state") in ("terminating", "terminated"):
            _wait_gone(client, name, poll_interval, wait_timeout)
            existing = None
        if existing is not None and existing.get("control_plane_id") != cp_id:
            raise KonnectError(f"{name} is already attached to control plane {existing.get('control_plane_id')} "
                               f"({existing.get('control_plane_geo')}); remove it first: kdiag konnect domain "
                               f"remove {name}")
        cp_doc = _get_cp(client, cp_id, settings.region)
        action = "unchanged"
        if existing is None:
            body = {"control_plane_id": cp_id, "control_plane_geo": settings.region, "domain": name,
                    "kind": DOMAIN_KIND}
            try:
                existing = client.create_custom_domain(body)
                action = "added"
            except KonnectConflict:
                existing = client.find_custom_domain(name)
                if existing is None or existing.get("control_plane_id") != cp_id:
                    raise
    _print_domain(fmt, action, existing, cp_doc, settings.region,
                  "added" if action == "added" else "is already on this control plane; nothing to do")


def _print_domain(fmt: str, action: str, dom: dict[str, Any], cp_doc: dict[str, Any], geo: str, verb: str) -> None:
    from kdiag.konnect.gateway import derive_target
    from kdiag.model import DnsRecord

    name = str(dom.get("domain"))
    derived = derive_target(cp_doc, str(dom.get("control_plane_geo") or geo))
    record = DnsRecord(name, "CNAME", derived.target + ".") if derived.target else None
    doc = {"action": action, "custom_domain": dom,
           "cname_record": record.zone_line() if record else None,
           "cname_target_source": derived.how}
    lines = [f"{name} {verb} (control plane {dom.get('control_plane_id')}, state {dom.get('state')})"]
    if record:
        lines += ["create this DNS record (the target is derived from the control plane; Konnect → Custom "
                  "Domains shows the authoritative value):", f"  {record.zone_line()}",
                  f"next: once it resolves, check: kdiag domain {name} --target {derived.target}"]
    else:
        lines += [f"the CNAME target could not be derived ({derived.how}); copy it from Konnect → Custom Domains",
                  f"next: kdiag domain {name} --target VALUE"]
    _emit(fmt, doc, lines)


@domain.command("list", context_settings=CONTEXT_SETTINGS)
@_konnect_options
@_format_option
def domain_list(fmt: str, **options: Any) -> None:
    """Every custom domain the token can see, with its state."""
    from tabulate import tabulate

    settings = _settings(**options)
    with _client(settings) as client:
        domains = client.list_custom_domains()
    if fmt == "json":
        click.echo(json.dumps({"custom_domains": domains}, indent=2, ensure_ascii=False))
        return
    if not domains:
        click.echo("no custom domains")
        return
    rows = [(d.get("domain"), d.get("state"), d.get("control_plane_id"), d.get("control_plane_geo"),
             d.get("created_at"), (d.get("state_metadata") or {}).get("reason", "")) for d in domains]
    click.echo(tabulate(rows, headers=("DOMAIN", "STATE", "CONTROL PLANE", "GEO", "CREATED", "REASON"),
                        maxcolwidths=[None, None, None, None, None, 60]))


@domain.command("remove", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@_konnect_options
@_format_option
def domain_remove(name: str, fmt: str, **options: Any) -> None:
    """Remove NAME from Konnect (already gone is success)."""
    name = _domain_name(name)
    settings = _settings(**options)
    with _client(settings) as client:
        existing = client.find_custom_domain(name)
        action = "absent"
        if existing is not None and existing.get("state") not in ("terminating", "terminated"):
            _delete(client, existing)
            action = "removed"
    verb = {"removed": "removal started (Konnect also drops its certificate and SNI)",
            "absent": "is not in Konnect (or already being removed); nothing to do"}[action]
    _emit(fmt, {"action": action, "domain": name, "custom_domain": existing}, [f"{name} {verb}"])


def _delete(client: KonnectClient, dom: dict[str, Any]) -> None:
    from kdiag.konnect.errors import KonnectNotFound

    try:
        client.delete_custom_domain(str(dom["id"]))
    except KonnectNotFound:
        pass  # gone between our lookup and the delete: the wanted state holds


def _wait_gone(client: KonnectClient, name: str, interval: float, timeout: float,
               sleep: Callable[[float], None] = time.sleep) -> None:
    from kdiag.konnect.errors import KonnectError

    deadline = time.monotonic() + timeout
    while True:
        found = client.find_custom_domain(name)
        if found is None:
            return
        if time.monotonic() >= deadline:
            raise KonnectError(f"{name} is still in Konnect (state {found.get('state')}) after {timeout:g} s; "
                               "try again later")
        sleep(interval)


@domain.command("readd", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--poll-interval", type=float, default=2.0, hidden=True)
@click.option("--wait-timeout", type=click.FloatRange(min=0, max=3600), default=120.0, show_default=True,
              metavar="SECONDS", help="How long to wait for the old domain to go.")
@_konnect_options
@_format_option
def domain_readd(name: str, poll_interval: float, wait_timeout: float, fmt: str, **options: Any) -> None:
    """Remove NAME, wait for it to go, and add it again to the same control plane and geo.

    Konnect validates a serverless custom domain once and never again; this forces a new validation after a
    DNS fix.
    """
    name = _domain_name(name)
    settings = _settings(**options)
    with _client(settings) as client:
        new, geo = readd_domain(client, name, region=settings.region, poll_interval=poll_interval,
                                wait_timeout=wait_timeout)
        cp_doc = _get_cp(client, str(new.get("control_plane_id")), geo)
    _print_domain(fmt, "readded", new, cp_doc, geo, "removed and added again; Konnect validates it anew")


def readd_domain(client: KonnectClient, name: str, *, region: str, poll_interval: float = 2.0,
                 wait_timeout: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any], str]:
    """Remove NAME, wait for it to go, add it again to the same control plane and geo: (new domain, geo).

    Shared by `kdiag konnect domain readd` and `kdiag domain NAME --wait --readd`."""
    from kdiag.konnect.errors import KonnectError

    old = client.find_custom_domain(name)
    if old is None:
        raise KonnectError(f"{name} is not in Konnect, so there is nothing to re-add; add it with: kdiag "
                           f"konnect domain add {name} --control-plane ID")
    cp_id, geo = str(old["control_plane_id"]), str(old.get("control_plane_geo") or region)
    if old.get("state") not in ("terminating", "terminated"):
        _delete(client, old)
    _wait_gone(client, name, poll_interval, wait_timeout, sleep)
    body = {"control_plane_id": cp_id, "control_plane_geo": geo, "domain": name,
            "kind": old.get("kind") or DOMAIN_KIND}
    return client.create_custom_domain(body), geo


# -- secure-backend ------------------------------------------------------------------------------------------------


@konnect.command("secure-backend", context_settings=CONTEXT_SETTINGS)
@click.option("--control-plane", "control_plane", required=True, metavar="ID", help="Control plane UUID.")
@click.option("--service", required=True, metavar="ID", help="Gateway service UUID.")
@click.option("--header", required=True, metavar="NAME", help="Header the backend checks, e.g. X-Backend-Secret.")
@click.option("--secret-env", default=SECRET_ENV, show_default=True, metavar="VAR",
              help="Environment variable holding the secret value.")
@click.option("--secret-stdin", is_flag=True, help="Read the secret from the first line of stdin instead.")
@_konnect_options
@_format_option
def secure_backend(control_plane: str, service: str, header: str, secret_env: str, secret_stdin: bool, fmt: str,
                   **options: Any) -> None:
    """Make the gateway send a shared secret header on every request to a backend service.

    The request-transformer plugin on the service puts HEADER:SECRET in both `replace` (overwrites a value a
    client sent) and `add` (sets it when absent), so a client can neither omit nor override it. The secret is
    read from an environment variable or stdin, never from the command line, and is never printed.
    """
    from kdiag.konnect.errors import KonnectError, KonnectNotFound

    cp_id = _uuid(control_plane, "--control-plane")
    svc_id = _uuid(service, "--service")
    header = header.strip()
    if not _HEADER.match(header):
        raise UsageError(f"--header {header!r} is not a valid header name")
    secret = _read_secret(secret_env, secret_stdin)
    settings = _settings(**options)
    entry = f"{header}:{secret}"
    with _client(settings) as client:
        client.add_secret(secret)
        try:
            client.get_json(client.core(cp_id, f"/services/{svc_id}", settings.region))
        except KonnectNotFound:
            raise KonnectError(f"control plane {cp_id} ({settings.region}) has no service {svc_id}") from None
        plugins = [p for p in client.paginate_offset(client.core(cp_id, f"/services/{svc_id}/plugins",
                                                                 settings.region))
                   if p.get("name") == "request-transformer"
                   and (p.get("service") or {}).get("id") in (svc_id, None)]
        if plugins:
            plugin = plugins[0]
            config = _with_header(plugin.get("config") or {}, header, entry)
            if config == _normalized(plugin.get("config") or {}) and plugin.get("enabled", True):
                action, plugin_id = "unchanged", str(plugin["id"])
            else:
                body = {k: v for k, v in plugin.items() if k not in ("id", "created_at", "updated_at")}
                body.update(config=config, enabled=True, service={"id": svc_id})
                url = client.core(cp_id, f"/plugins/{plugin['id']}", settings.region)
                client.request("PUT", url, json_body=body)
                action, plugin_id = "updated", str(plugin["id"])
        else:
            body = {"name": "request-transformer", "enabled": True,
                    "config": {"replace": {"headers": [entry]}, "add": {"headers": [entry]}}}
            url = client.core(cp_id, f"/services/{svc_id}/plugins", settings.region)
            created = client.request("POST", url, json_body=body).json()
            action, plugin_id = "created", str(created["id"])
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:12]
    doc = {"action": action, "plugin_id": plugin_id, "control_plane_id": cp_id, "service_id": svc_id,
           "header": header, "secret_sha256_prefix": fingerprint}
    verb = {"created": "created", "updated": "updated", "unchanged": "already sets this secret; nothing to do"}[action]
    _emit(fmt, doc, [f"request-transformer {plugin_id} on service {svc_id} {verb}: every request to the backend "
                     f"carries {header} (secret sha256 {fingerprint}…, never printed)"])


def _read_secret(env: str, from_stdin: bool) -> str:
    if from_stdin:
        stream = click.get_text_stream("stdin")
        value = stream.readline().rstrip("\r\n")
        where = "stdin"
    else:
        value = os.environ.get(env, "")
        where = f"${env}"
    if not value:
        hint = "" if from_stdin else f" (set {env}, or pass --secret-stdin and pipe it in)"
        raise UsageError(f"no secret in {where}{hint}; it is never taken from the command line")
    if any(c in value for c in "\r\n\0") or not value.isprintable():
        raise UsageError(f"the secret in {where} has control characters; a header value cannot carry them")
    if value != value.strip():
        raise UsageError(f"the secret in {where} starts or ends with whitespace, which HTTP would strip")
    return value


def _normalized(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(config))
    for op in ("replace", "add"):
        out.setdefault(op, {})
        out[op] = dict(out[op] or {})
        out[op]["headers"] = list(out[op].get("headers") or [])
    return out


def _with_header(config: dict[str, Any], header: str, entry: str) -> dict[str, Any]:
    """`config` with exactly one `header` entry in replace and in add (other transformations kept)."""
    out = _normalized(config)
    for op in ("replace", "add"):
        kept = [h for h in out[op]["headers"] if h.split(":", 1)[0].strip().lower() != header.lower()]
        out[op]["headers"] = [*kept, entry]
    return out


def register(group: click.Group) -> None:
    group.add_command(konnect)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(konnect())
