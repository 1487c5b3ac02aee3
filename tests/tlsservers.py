"""Loopback servers for the TLS and HTTP rules: a Kong-like HTTPS server, a staller and a refusing port.

`KongLikeServer` listens on an ephemeral port of 127.0.0.1 (or ::1). Its SNI callback picks the certificate
by server name, like Kong's Certificate/SNI entities; an unknown name gets the default certificate (Kong's own
when `default` is `pki.kong`), or a handshake_failure alert when there is no default. It answers one request
per connection with the response configured for the Host header, then closes.

Every server is a context manager; nothing outlives its `with` block, and nothing is written to the
repository (PEM files go to a temporary directory).
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.pki import Served

KONG_VERSION = "3.9.0"
REQUEST_ID = "5e1b2c3d4e5f60718293a4b5c6d7e8f9"


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    trickle: float = 0.0  # seconds between bytes: a server that answers, but never finishes in time

    def wire(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} {self.reason}", *(f"{k}: {v}" for k, v in self.headers),
                f"Content-Length: {len(self.body)}", "Connection: close", "", ""]
        return "\r\n".join(head).encode("latin-1") + self.body


# A proxied response: the upstream's Server passes through; Kong adds Via and its latency headers.
KONG_PROXIED = Response(200, "OK", (
    ("Content-Type", "application/json"), ("Server", "gunicorn"), ("Via", f"1.1 kong/{KONG_VERSION}"),
    ("X-Kong-Upstream-Latency", "3"), ("X-Kong-Proxy-Latency", "1"), ("X-Kong-Request-Id", REQUEST_ID)),
    b'{"hello": "world"}')
# Kong's own 404 when no Route matches (kong/runloop/handler.lua; body from kong/tools/http.lua, 3.5+).
KONG_NO_ROUTE = Response(404, "Not Found", (
    ("Content-Type", "application/json; charset=utf-8"), ("Server", f"kong/{KONG_VERSION}"),
    ("X-Kong-Response-Latency", "0"), ("X-Kong-Request-Id", REQUEST_ID)),
    json.dumps({"message": "no Route matched with those values", "request_id": REQUEST_ID},
               indent=2).encode())
# `headers = off`: a proxied answer with no Kong header at all.
KONG_HEADERS_OFF = Response(200, "OK", (("Content-Type", "text/plain"),), b"hello")
NOT_KONG = Response(200, "OK", (("Content-Type", "text/html"), ("Server", "nginx/1.25.3")), b"<h1>Welcome</h1>")


@dataclass
class _Config:
    contexts: dict[str, ssl.SSLContext]
    default: ssl.SSLContext | None
    responses: dict[str, Response]
    default_response: Response
    hosts_seen: list[str] = field(default_factory=list)
    sni_seen: list[str | None] = field(default_factory=list)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        config = self.server.config
        self.request.settimeout(5)
        try:
            with config_base(config).wrap_socket(self.request, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return  # a handshake-only probe: nothing to answer
                    data += chunk
                host = ""
                for line in data.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"host:"):
                        host = line.split(b":", 1)[1].strip().decode("latin-1")
                config.hosts_seen.append(host)
                response = config.responses.get(host, config.default_response)
                if response.trickle:
                    for byte in response.wire():
                        tls.sendall(bytes([byte]))
                        time.sleep(response.trickle)
                else:
                    tls.sendall(response.wire())
        except (OSError, ssl.SSLError):
            return


def config_base(config: _Config) -> ssl.SSLContext:
    return config.default or next(iter(config.contexts.values()))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    config: _Config


class _Server6(_Server):
    address_family = socket.AF_INET6


def _context(served: Served, directory: Path, stem: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = served.write(directory, stem)
    ctx.load_cert_chain(cert, key)
    return ctx


class KongLikeServer:
    """An HTTPS server choosing its certificate by SNI and its response by Host.

    Args:
        certs: server name -> what to present for it.
        default: what to present for any other name (None: refuse the handshake with handshake_failure).
        responses: Host -> response; `default_response` for any other Host.
    """

    def __init__(self, certs: dict[str, Served], *, default: Served | None = None,
                 responses: dict[str, Response] | None = None, default_response: Response = KONG_PROXIED,
                 host: str = "127.0.0.1") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kdiag-tls-")
        directory = Path(self._tmp.name)
        contexts = {name: _context(s, directory, f"c{i}") for i, (name, s) in enumerate(certs.items())}
        default_ctx = _context(default, directory, "default") if default is not None else None
        self.config = _Config(contexts, default_ctx, dict(responses or {}), default_response)
        base = config_base(self.config)
        for ctx in {id(c): c for c in [base, *contexts.values()]}.values():
            ctx.sni_callback = self._choose
        self.host = host
        cls = _Server6 if ":" in host else _Server
        self._server = cls((host, 0), _Handler, bind_and_activate=True)
        self._server.config = self.config
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def _choose(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> int | None:
        self.config.sni_seen.append(name)
        chosen = self.config.contexts.get((name or "").lower())
        if chosen is not None:
            sslobj.context = chosen
            return None
        if self.config.default is not None:
            sslobj.context = self.config.default
            return None
        return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def connect_to(self, name: str) -> str:
        """The --connect-to value that sends name:443 here."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{name}:443:{host}:{self.port}"

    def __enter__(self) -> KongLikeServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._tmp.cleanup()


class Staller:
    """Accepts TCP connections and never says a word (until the block ends)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> Staller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


def refusing_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def net_check(rule: object, resolver: tuple[str, int], name: str, *, connect_to: tuple[str, ...] = (),
              resolve: tuple[str, ...] = (), anchors: tuple[object, ...] = (), timeout: float = 2.0,
              now: object = None, target: str | None = "9e454bcfec.kongcloud.dev", tls: object = None,
              http: object = None, dns_timeout: float = 3.0, **options: object) -> object:
    """Run one TLS/HTTP rule for `name` the way the CLI wires it, with DNS from `resolver` (always explicit).

    The trust store is `anchors` only (never the machine's), so results do not depend on the host.
    """
    from kdiag.context import Context, Options, utcnow
    from kdiag.engine import run_one
    from kdiag.probes.dns import Dns, Nameserver
    from kdiag.probes.http import Http
    from kdiag.probes.tls import Tls
    from kdiag.targets import parse_connect_to, parse_resolve

    opts = Options(target=target, connect_to=tuple(parse_connect_to(c) for c in connect_to),
                   resolve=tuple(parse_resolve(r) for r in resolve), **options)  # type: ignore[arg-type]
    with Dns([Nameserver(*resolver)], timeout=dns_timeout) as dns:
        ctx = Context(domain=name, dns=dns, options=opts, now=now or utcnow,  # type: ignore[arg-type]
                      tls=tls or Tls(timeout=timeout, extra_anchors=anchors, system_store=False),  # type: ignore[arg-type]
                      http=http or Http(timeout=timeout))  # type: ignore[arg-type]
        return run_one(rule, ctx)  # type: ignore[arg-type]
