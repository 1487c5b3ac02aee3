"""One small client for the public Konnect APIs kdiag needs, on httpx.

* KdiagError
  + KonnectError            -- any Konnect failure, said in one line (problem+json title, detail, parameters)
    + KonnectTokenError     -- KONNECT_TOKEN missing or not shaped like a Konnect token (no request was sent)
    + KonnectAuthError      -- 401/403: the token is not accepted, or lacks a permission
    + KonnectNotFound       -- 404
    + KonnectConflict       -- 409
    + KonnectUnavailable    -- could not tell: unreachable, too slow, 5xx or 429 after bounded retries

Control planes and core entities live on the regional hosts (`https://{geo}.api.konghq.com`); custom domains and
cloud-gateway configurations on the global host (`https://global.api.konghq.com`), whatever the org's region.
`base_url` (the CLI's --konnect-url) replaces both, for staging hosts and for tests.

The token is a secret: it goes only into the Authorization header. It is never part of a message, a repr, or a
--debug trace (where Authorization, and any other registered secret, is shown as [REDACTED]).
"""

from __future__ import annotations

import email.utils
import functools
import json
import os
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from kdiag import __version__
from kdiag.konnect.errors import (
    KonnectAuthError,
    KonnectConflict,
    KonnectError,
    KonnectNotFound,
    KonnectTokenError,
    KonnectUnavailable,
)
from kdiag.konnect.regions import DEFAULT_TIMEOUT, REGIONS

__all__ = ["REGIONS", "KonnectClient", "KonnectError", "check_token", "token_from_env"]
GLOBAL_URL = "https://global.api.konghq.com"
REGIONAL_URL = "https://{region}.api.konghq.com"
TOKEN_ENV = "KONNECT_TOKEN"
# kpat_ (personal access token) and spat_ (system account token) are the documented prefixes; the body is
# alphanumeric in every documented example. The length is not documented, so it is not checked.
_TOKEN = re.compile(r"^(kpat|spat)_[A-Za-z0-9]+$")
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
PAGE_SIZE = 100  # the spec gives no default or maximum page size for platform APIs; 100 keeps lists short
MAX_ATTEMPTS = 4
# Longest kdiag waits for one Retry-After; a longer ask is reported instead of hanging a script for minutes.
MAX_RETRY_WAIT = 60.0
# kong-operator's fallback when a 429 carries no Retry-After (DefaultRateLimitRetryAfter).
DEFAULT_RETRY_AFTER = 15.0
REDACTED = "[REDACTED]"


def check_token(token: str | None) -> str:
    """The token, stripped of surrounding whitespace, or KonnectTokenError. The message never quotes it."""
    if token is None or not token.strip():
        raise KonnectTokenError(f"{TOKEN_ENV} is not set; set it to a Konnect personal access token (kpat_…) "
                                "or system account token (spat_…)")
    token = token.strip()
    if not _TOKEN.match(token):
        shape = "it has whitespace inside" if any(c.isspace() for c in token) else (
            "it does not start with kpat_ or spat_" if not token.startswith(("kpat_", "spat_"))
            else "it has nothing after the prefix" if len(token) == 5
            else "it has characters other than letters and digits after the prefix")
        raise KonnectTokenError(f"{TOKEN_ENV} does not look like a Konnect token ({shape}); expected a personal "
                                "access token (kpat_…) or a system account token (spat_…)")
    return token


def token_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """KONNECT_TOKEN, or None when unset or empty."""
    value = (os.environ if environ is None else environ).get(TOKEN_ENV)
    return value if value and value.strip() else None


class KonnectClient:
    """Requests to Konnect with bounded timeouts, bounded retries and one-line errors.

    Attributes:
        region: the geo of the regional APIs (control planes, core entities) unless a call names another.
        base_url: replaces both the regional and the global host (staging, tests).
        debug: called with each line of a request/response trace (the CLI's --debug writes them to stderr).
    """

    def __init__(self, token: str, *, region: str = "us", base_url: str | None = None,
                 transport: httpx.BaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT,
                 debug: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep,
                 max_attempts: int = MAX_ATTEMPTS, max_retry_wait: float = MAX_RETRY_WAIT,
                 page_size: int = PAGE_SIZE) -> None:
        self._token = check_token(token)
        if region not in REGIONS:
            raise KonnectError(f"unknown region {region!r}; use one of {', '.join(REGIONS)}")
        self.region = region
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self.debug = debug
        self._sleep = sleep
        self.max_attempts = max(1, max_attempts)
        self.max_retry_wait = max_retry_wait
        self.page_size = page_size
        self._secrets: set[str] = {self._token}
        self._http = httpx.Client(
            transport=transport,
            verify=_ssl_context(),
            # connect/read/write/pool each bounded: a silent API ends in one error line, never a hang.
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": f"kdiag/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never the token
        return f"KonnectClient(region={self.region!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KonnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_secret(self, value: str) -> None:
        """Redact `value` from --debug traces too (e.g. the backend secret of secure-backend)."""
        if value:
            # Also as it appears inside JSON bodies (quotes, backslashes and non-ASCII are escaped there).
            self._secrets |= {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}

    # -- URLs ---------------------------------------------------------------------------------------------

    def regional(self, path: str, region: str | None = None) -> str:
        geo = region or self.region
        if geo not in REGIONS:
            raise KonnectError(f"unknown region {geo!r}; use one of {', '.join(REGIONS)}")
        return (self.base_url or REGIONAL_URL.format(region=geo)) + path

    def global_(self, path: str) -> str:
        return (self.base_url or GLOBAL_URL) + path

    # -- requests -----------------------------------------------------------------------------------------

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None) -> httpx.Response:
        """Send one request (retrying idempotent ones on 429 and 5xx); return a 2xx response or raise."""
        method = method.upper()
        what = f"{method} {_path(url)}"
        for attempt in range(1, self.max_attempts + 1):
            response = self._send(method, url, params, json_body, what)
            if response.status_code < 400:
                return response
            retryable = method in IDEMPOTENT and attempt < self.max_attempts
            if response.status_code == 429:
                wait = _retry_after(response)
                if retryable and wait <= self.max_retry_wait:
                    self._trace(f"* rate limited; retrying in {wait:g} s (attempt {attempt + 1} of "
                                f"{self.max_attempts})")
                    self._sleep(wait)
                    continue
                raise KonnectUnavailable(
                    f"{what}: Konnect rate-limited kdiag (HTTP 429{_said(response)}); retry after {wait:g} s",
                    status=429, body=_body(response))
            if response.status_code >= 500:
                if retryable:
                    wait = min(0.5 * 2 ** (attempt - 1), 8.0)  # 0.5, 1, 2 s: bounded exponential backoff
                    self._trace(f"* HTTP {response.status_code}; retrying in {wait:g} s (attempt {attempt + 1} of "
                                f"{self.max_attempts})")
                    self._sleep(wait)
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                raise KonnectUnavailable(f"{what}: Konnect failed with HTTP {response.status_code}{tries}"
                                         f"{_said(response)}", status=response.status_code, body=_body(response))
            raise _client_error(what, response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None, json_body: Any,
              what: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}"}
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        content = json.dumps(json_body).encode() if json_body is not None else None
        request = self._http.build_request(method, url, params=params, headers=headers, content=content)
        self._trace_request(request, content)
        try:
            response = self._http.send(request)
            response.read()
        except httpx.TimeoutException:
            raise KonnectUnavailable(f"{what}: Konnect at {request.url.host} did not answer within "
                                     f"{self.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise KonnectUnavailable(f"{what}: cannot reach Konnect at {request.url.host}: "
                                     f"{_transport_reason(exc)}") from None
        self._trace_response(response)
        return response

    # -- debug traces (secrets redacted) ------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def _trace(self, line: str) -> None:
        if self.debug is not None:
            self.debug(self._redact(line))

    def _trace_request(self, request: httpx.Request, content: bytes | None) -> None:
        if self.debug is None:
            return
        self._trace(f"> {request.method} {request.url}")
        for name, value in request.headers.items():
            shown = f"Bearer {REDACTED}" if name.lower() == "authorization" else value
            self._trace(f"> {name}: {shown}")
        if content:
            self._trace(f"> {content.decode(errors='replace')}")

    def _trace_response(self, response: httpx.Response) -> None:
        if self.debug is None:
            return
        self._trace(f"< {response.status_code} {response.reason_phrase}")
        for name, value in response.headers.items():
            self._trace(f"< {name}: {value}")
        if response.content:
            self._trace(f"< {response.text[:4000]}")

    # -- JSON helpers -------------------------------------------------------------------------------------

    def get_json(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        return _json(self.request("GET", url, params=params), f"GET {_path(url)}")

    def paginate(self, url: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a `meta.page` list (platform APIs), page by page."""
        number = 1
        seen = 0
        while True:
            query = {**(params or {}), "page[size]": self.page_size, "page[number]": number}
            doc = self.get_json(url, query)
            data = (doc.get("data") or []) if isinstance(doc, dict) else []
            yield from data
            seen += len(data)
            total = ((doc.get("meta") or {}).get("page") or {}).get("total") if isinstance(doc, dict) else None
            if not data or (isinstance(total, int | float) and seen >= total) or number >= 1000:
                return
            number += 1

    def paginate_offset(self, url: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a core-entity list (`size`, `offset`; the response carries the next offset)."""
        offset: str | None = None
        for _ in range(1000):
            query = {**(params or {}), "size": 1000}
            if offset:
                query["offset"] = offset
            doc = self.get_json(url, query)
            yield from doc.get("data") or []
            offset = doc.get("offset")
            if not offset:
                return

    # -- control planes (regional) ------------------------------------------------------------------------

    def list_control_planes(self, *, name: str | None = None, cluster_types: Sequence[str] = (),
                            region: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if name is not None:
            params["filter[name][eq]"] = name
        if cluster_types:
            params["filter[cluster_type][oeq]"] = ",".join(cluster_types)
        items = list(self.paginate(self.regional("/v2/control-planes", region), params))
        # The filter is the server's; check again so a server that ignores it cannot make kdiag pick a wrong one.
        if name is not None:
            items = [cp for cp in items if cp.get("name") == name]
        if cluster_types:
            items = [cp for cp in items if (cp.get("config") or {}).get("cluster_type") in cluster_types]
        return items

    def get_control_plane(self, cp_id: str, region: str | None = None) -> dict[str, Any]:
        return dict(self.get_json(self.regional(f"/v2/control-planes/{cp_id}", region)))

    def create_control_plane(self, body: Mapping[str, Any], region: str | None = None) -> dict[str, Any]:
        url = self.regional("/v2/control-planes", region)
        return dict(_json(self.request("POST", url, json_body=body), "POST /v2/control-planes"))

    # -- cloud-gateway configurations (global) ------------------------------------------------------------

    def put_configuration(self, body: Mapping[str, Any]) -> dict[str, Any]:
        url = self.global_("/v2/cloud-gateways/configurations")
        return dict(_json(self.request("PUT", url, json_body=body), "PUT /v2/cloud-gateways/configurations"))

    def list_configurations(self, control_plane_id: str) -> list[dict[str, Any]]:
        url = self.global_("/v2/cloud-gateways/configurations")
        items = self.paginate(url, {"filter[control_plane_id][eq]": control_plane_id})
        return [c for c in items if c.get("control_plane_id") == control_plane_id]

    # -- custom domains (global) --------------------------------------------------------------------------

    def list_custom_domains(self, domain: str | None = None) -> list[dict[str, Any]]:
        url = self.global_("/v2/cloud-gateways/custom-domains")
        params = {"filter[domain][eq]": domain} if domain else None
        items = list(self.paginate(url, params))
        if domain:
            items = [d for d in items if str(d.get("domain", "")).rstrip(".").lower() == domain]
        return items

    def find_custom_domain(self, domain: str) -> dict[str, Any] | None:
        """The custom domain named `domain`, or None. Prefers a live one over one being torn down."""
        found = self.list_custom_domains(domain)
        found.sort(key=lambda d: d.get("state") in ("terminating", "terminated"))
        return found[0] if found else None

    def get_custom_domain(self, domain_id: str) -> dict[str, Any]:
        return dict(self.get_json(self.global_(f"/v2/cloud-gateways/custom-domains/{domain_id}")))

    def create_custom_domain(self, body: Mapping[str, Any]) -> dict[str, Any]:
        url = self.global_("/v2/cloud-gateways/custom-domains")
        return dict(_json(self.request("POST", url, json_body=body), "POST /v2/cloud-gateways/custom-domains"))

    def delete_custom_domain(self, domain_id: str) -> None:
        # A 204 has no body (the Go SDK once panicked on it); nothing is read from the response.
        self.request("DELETE", self.global_(f"/v2/cloud-gateways/custom-domains/{domain_id}"))

    def custom_domain_online_status(self, domain_id: str) -> dict[str, Any]:
        return dict(self.get_json(self.global_(f"/v2/cloud-gateways/custom-domains/{domain_id}/online-status")))

    # -- core entities (regional) -------------------------------------------------------------------------

    def core(self, cp_id: str, path: str, region: str | None = None) -> str:
        return self.regional(f"/v2/control-planes/{cp_id}/core-entities{path}", region)


# -- helpers ---------------------------------------------------------------------------------------------------


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # httpx's default verification (certifi's roots), built once: loading the roots costs ~50 ms per client.
    return httpx.create_ssl_context()



def _path(url: str) -> str:
    return httpx.URL(url).path


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise KonnectError(f"{what}: Konnect answered HTTP {response.status_code} with a body that is not "
                           "JSON") from None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def describe_problem(body: Any) -> str:
    """One line from an error body: problem+json (title, detail, invalid_parameters), the core entities'
    gRPC-style {code, message, details}, or Kong's {message}."""
    if not isinstance(body, dict):
        text = " ".join(str(body or "").split())
        return text[:200]
    parts: list[str] = []
    title, detail = body.get("title"), body.get("detail")
    if title:
        parts.append(str(title))
    if detail and detail != title:
        parts.append(str(detail))
    if body.get("message") and not parts:
        parts.append(str(body["message"]))
    for item in body.get("invalid_parameters") or []:
        if isinstance(item, dict):
            field, reason = item.get("field", "?"), item.get("reason", "")
            extra = f" (one of {', '.join(map(str, item['choices']))})" if item.get("choices") else ""
            parts.append(f"{field}: {reason}{extra}")
    for item in body.get("details") or []:
        if isinstance(item, dict):
            messages = "; ".join(map(str, item.get("messages") or []))
            parts.append(f"{item.get('field', '?')}: {messages}" if messages else str(item.get("field", "")))
    text = "; ".join(p for p in parts if p)
    if body.get("instance"):
        text += f" [{body['instance']}]"
    return " ".join(text.split())


def _said(response: httpx.Response) -> str:
    text = describe_problem(_body(response))
    return f": {text}" if text else ""


_AUTH_HINT = {
    401: "check KONNECT_TOKEN: it may be expired, revoked (a revoked token can work for up to 15 minutes more) "
         "or from another Konnect organisation",
    403: "the token is valid but lacks a permission for this: check the roles of the user or system account "
         "(e.g. Control Plane Admin or Cloud Gateway admin)",
}


def _client_error(what: str, response: httpx.Response) -> KonnectError:
    status = response.status_code
    body = _body(response)
    said = describe_problem(body)
    said = f": {said}" if said else ""
    cls: type[KonnectError] = {401: KonnectAuthError, 403: KonnectAuthError, 404: KonnectNotFound,
                               409: KonnectConflict}.get(status, KonnectError)
    hint = f" ({_AUTH_HINT[status]})" if status in _AUTH_HINT else ""
    return cls(f"{what}: HTTP {status}{said}{hint}", status=status, body=body)


def _retry_after(response: httpx.Response) -> float:
    """Seconds to wait: Retry-After (seconds or an HTTP date), else RateLimit-Reset, else 15 s."""
    for header in ("retry-after", "ratelimit-reset"):
        value = response.headers.get(header)
        if not value:
            continue
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return DEFAULT_RETRY_AFTER


def _transport_reason(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
