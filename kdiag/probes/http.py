"""One HTTPS `GET /` to a given address with SNI and Host = the name, and what it says about Kong.

Plain `ssl` + `http.client` rather than httpx: each probe is one fresh connection (`Connection: close`), so
httpx's pool, which is keyed by origin and ignores the `sni_hostname` extension, can never hand a request for
one name a TLS session opened for another. Certificate checking is off here on purpose: whether the
certificate is right is tls-certificate's question; reachability only asks whether the gateway answers.

Kong detection follows Kong/kong's `kong/constants.lua` and `runloop/handler.lua` (see
/work/shared/design/tls-probes-kong.md §4): `X-Kong-Request-Id` (3.5+), `Server`/`Via` carrying `kong/x.y.z`,
any `X-Kong-*-Latency`, or the no-route 404 body. `headers = off` removes every header, so the absence of a
signature proves nothing.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass

from kdiag import __version__
from kdiag.probes.cache import SingleFlightCache
from kdiag.probes.tls import NOT_CONNECTED, connect, deadline

HTTP_ERROR = "http-error"  # TLS worked, the HTTP exchange did not (timeout, garbage, closed)
MAX_BODY = 16384
NO_ROUTE = "no Route matched with those values"
_KONG_TOKEN = re.compile(r"(^|[\s,])kong/(\d+\.\d+(?:\.\d+)*)", re.I)
_LATENCY = ("x-kong-proxy-latency", "x-kong-upstream-latency", "x-kong-response-latency")


@dataclass(frozen=True)
class HttpResult:
    """What address:port answered to `GET /` with Host/SNI = host.

    Attributes:
        outcome: "ok", one of probes.tls' connect/TLS outcomes, or HTTP_ERROR.
        headers: response headers as (name, value), names lower-cased, in order.
    """

    address: str
    port: int
    host: str
    outcome: str
    error: str = ""
    alert: str = ""
    status: int = 0
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    elapsed_ms: float = 0.0

    @property
    def connected(self) -> bool:
        return self.outcome not in NOT_CONNECTED

    @property
    def answered(self) -> bool:
        return self.outcome == "ok"

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None

    @property
    def no_route(self) -> bool:
        """Kong's own 404 for a request no Route matches: the gateway got it, but no route has this host."""
        if self.status != 404:
            return False
        try:
            doc = json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return NO_ROUTE in self.body.decode("utf-8", "replace")
        return isinstance(doc, dict) and doc.get("message") == NO_ROUTE

    def kong_signals(self) -> list[str]:
        """Every Kong signature in the response, as 'header: value' (empty: nothing says Kong)."""
        found = []
        request_id = self.header("x-kong-request-id")
        if request_id is not None:
            found.append(f"X-Kong-Request-Id: {request_id}")
        for name in ("server", "via"):
            value = self.header(name)
            if value and _KONG_TOKEN.search(value):
                found.append(f"{name.title()}: {value}")
        found += [f"{k}: {v}" for k, v in self.headers if k in _LATENCY]
        if self.no_route:
            found.append(f"404 body {NO_ROUTE!r}")
        return found

    @property
    def kong_version(self) -> str | None:
        for name in ("server", "via"):
            match = _KONG_TOKEN.search(self.header(name) or "")
            if match:
                return match.group(2)
        return None


def get(address: str, port: int, host: str, timeout: float) -> HttpResult:
    started = time.monotonic()

    def done(outcome: str, error: str = "", alert: str = "", **kw: object) -> HttpResult:
        return HttpResult(address, port, host, outcome, error, alert,
                          elapsed_ms=round((time.monotonic() - started) * 1000, 1), **kw)  # type: ignore[arg-type]

    import http.client  # here: loading it is start-up time every run would pay (see kdiag/probes/tls.py)

    tls, outcome, error, alert = connect(address, port, host, timeout, alpn=("http/1.1",))
    if tls is None:
        return done(outcome, error, alert)
    # The whole response has a deadline too, not only each read (see kdiag.probes.tls.deadline).
    aborted, timer = deadline(tls, timeout)
    try:
        request = (f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kdiag/{__version__}\r\n"
                   "Accept: application/json\r\nConnection: close\r\n\r\n")
        tls.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(tls, method="GET")
        response.begin()
        body = response.read(MAX_BODY)
        if aborted.is_set():
            raise TimeoutError
        headers = tuple((k.lower(), v) for k, v in response.getheaders())
        return done("ok", status=response.status, reason=response.reason, headers=headers, body=body)
    except TimeoutError:
        return done(HTTP_ERROR, f"TLS worked, but no HTTP response within {timeout:g} s")
    except (http.client.HTTPException, ssl.SSLError, OSError) as exc:
        if aborted.is_set():
            return done(HTTP_ERROR, f"TLS worked, but no complete HTTP response within {timeout:g} s")
        return done(HTTP_ERROR, f"TLS worked, but the HTTP exchange failed: {type(exc).__name__}: {exc}")
    finally:
        timer.cancel()
        tls.close()


class Http:
    """The HTTPS client the reachability rule uses; one fresh connection per (address, port, host), cached."""

    def __init__(self, *, timeout: float = 5.0, cache_size: int = 1024) -> None:
        self.timeout = timeout
        self._cache: SingleFlightCache[tuple[str, int, str], HttpResult] = SingleFlightCache(cache_size)

    def get(self, address: str, port: int, host: str) -> HttpResult:
        return self._cache.get((address, port, host), lambda: get(address, port, host, self.timeout))

    def clear(self) -> None:
        """Forget cached responses (`serve` and `--wait` must see a gateway that changed)."""
        self._cache.clear()
