"""`kdiag serve`: a Prometheus exporter in blackbox_exporter's multi-target style.

Prometheus scrapes `/probe?target=NAME[&cname_target=HOST][&timeout=SECONDS]` once per domain (relabelling
turns each configured target into the `target` parameter) and gets the diagnosis as text exposition, the same
metrics `kdiag domain --format prometheus` prints (kdiag.formats) plus:

* `kdiag_probe_deadline_seconds`: the time this probe was allowed: `timeout=` or Prometheus'
  `X-Prometheus-Scrape-Timeout-Seconds` header (the smaller of the two; 10 s without either) minus
  `--timeout-offset`, so the answer reaches Prometheus before it gives up on the scrape.
* `kdiag_probe_deadline_exceeded`: 1 when the diagnosis overran that deadline. The probe then answers at the
  deadline with what it has, `probe_success 0` and `kdiag_exit_code 3` ("kdiag could not tell"); it never
  hangs. The diagnosis goes on in the background, bounded by `--timeout` per network operation, and warms
  the DNS cache for the next scrape.

Caches: the Diagnoser's DNS, TLS and HTTP clients cache every answer for as long as they live (right for one
`kdiag domain` run, wrong for a process that runs for weeks: a fixed CNAME or a renewed certificate would never
be seen). The exporter forgets them once they are older than CACHE_MAX_AGE seconds, so probes a few seconds
apart still share lookups (the gateway's addresses, parent CAA records) while every scrape interval sees fresh
data.

`/metrics` describes the exporter itself (probes answered, errors by reason, probe durations, DNS cache use,
process start time); `/-/healthy` answers 200. A bad parameter is a 400 with a one-line message.

One `Diagnoser` serves every request (rules loaded once, one DNS cache); requests are handled on threads
(`http.server.ThreadingHTTPServer`), diagnoses run on a bounded pool so a flood of slow probes queues instead
of starting unbounded work. SIGINT and SIGTERM stop the server cleanly.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from kdiag import __version__
from kdiag.errors import UsageError
from kdiag.formats import PROMETHEUS_CONTENT_TYPE, Family, exposition, report_families
from kdiag.model import EXIT_UNKNOWN
from kdiag.names import InvalidName, normalize_domain, normalize_target

# Prometheus' own default scrape_timeout: the deadline when neither `timeout=` nor the header says.
DEFAULT_SCRAPE_TIMEOUT = 10.0
MAX_SCRAPE_TIMEOUT = 3600.0
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
PARAMETERS = ("target", "cname_target", "timeout")
ERROR_REASONS = ("bad_request", "deadline_exceeded", "internal_error")
TEXT = "text/plain; charset=utf-8"
CACHE_MAX_AGE = 5.0


class DiagnoserLike(Protocol):
    """What the exporter needs from kdiag.diagnose.Diagnoser (tests substitute a slow one)."""

    def diagnose(self, name: str, target: str | None = None) -> Any: ...

    def clear_caches(self) -> None: ...

    def close(self) -> None: ...


class BadRequest(Exception):
    """A probe request kdiag cannot run as asked; the message is the one-line 400 body."""


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: str


@dataclass(frozen=True)
class ProbeRequest:
    name: str  # normalised
    target: str | None
    deadline: float  # seconds this probe may take


@dataclass
class _Stats:
    """The exporter's own counters; guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    probes: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_REASONS, 0))
    duration_sum: float = 0.0
    in_flight: int = 0


class Exporter:
    """Answers /probe, /metrics and /-/healthy; independent of HTTP plumbing so it can be tested directly."""

    def __init__(self, diagnoser: DiagnoserLike, *, timeout_offset: float = 0.5, max_concurrent: int = 8,
                 cache_max_age: float = CACHE_MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self.diagnoser = diagnoser
        self.timeout_offset = timeout_offset
        self.cache_max_age = cache_max_age
        self._clock = clock
        self._caches_since = clock()
        self._caches_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="kdiag-probe")
        self._stats = _Stats()
        self.started_at = time.time()

    def close(self) -> None:
        # Diagnoses still running are abandoned (their threads are bounded by --timeout); queued ones dropped.
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.diagnoser.close()

    # -- routing ---------------------------------------------------------------------------------------------

    def handle(self, path: str, headers: Mapping[str, str] | Message) -> Response:
        url = urlsplit(path)
        if url.path == "/probe":
            return self.probe(url.query, headers.get(TIMEOUT_HEADER))
        if url.path == "/metrics":
            return Response(200, PROMETHEUS_CONTENT_TYPE, self.metrics())
        if url.path == "/-/healthy":
            return Response(200, TEXT, "Healthy\n")
        if url.path == "/":
            return Response(200, TEXT, f"kdiag {__version__} exporter\n"
                                       "/probe?target=NAME[&cname_target=HOST][&timeout=SECONDS]\n"
                                       "/metrics\n/-/healthy\n")
        return Response(404, TEXT, f"not found: {_one_line(url.path)} (try /probe?target=NAME)\n")

    # -- /probe ----------------------------------------------------------------------------------------------

    def probe(self, query: str, header_timeout: str | None = None) -> Response:
        started = self._clock()
        try:
            req = self.parse_probe(query, header_timeout)
        except BadRequest as exc:
            self._count_error("bad_request")
            return Response(400, TEXT, _one_line(str(exc)) + "\n")
        with self._stats.lock:
            self._stats.in_flight += 1
        try:
            return self._run(req, started)
        finally:
            with self._stats.lock:
                self._stats.in_flight -= 1

    def _run(self, req: ProbeRequest, started: float) -> Response:
        self._expire_caches()
        future = self._pool.submit(self.diagnoser.diagnose, req.name, req.target)
        try:
            diagnosis = future.result(timeout=req.deadline)
        except FutureTimeout:
            future.cancel()  # still queued: never start it; already running: it finishes in the background
            self._count_error("deadline_exceeded")
            elapsed = self._clock() - started
            self._count_probe(elapsed)
            return Response(200, PROMETHEUS_CONTENT_TYPE, exposition(overrun_families(req, elapsed)))
        except UsageError as exc:
            self._count_error("bad_request")
            return Response(400, TEXT, _one_line(str(exc)) + "\n")
        except Exception as exc:  # a bug: say so in one line, count it, keep serving
            self._count_error("internal_error")
            print(f"kdiag: error: probe {req.name}: internal error: {type(exc).__name__}: {_one_line(str(exc))}",
                  file=sys.stderr, flush=True)
            return Response(500, TEXT, f"internal error: {type(exc).__name__}: {_one_line(str(exc))}\n")
        self._count_probe(self._clock() - started)
        families = report_families(diagnosis.report) + deadline_families(req.name, req.deadline, exceeded=False)
        return Response(200, PROMETHEUS_CONTENT_TYPE, exposition(families))

    def parse_probe(self, query: str, header_timeout: str | None) -> ProbeRequest:
        """Validate the parameters; raises BadRequest with a one-line reason."""
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=10)
        except ValueError as exc:
            raise BadRequest(f"malformed query string: {exc}") from None
        params: dict[str, str] = {}
        for key, value in pairs:
            if key not in PARAMETERS:
                raise BadRequest(f"unknown parameter {key!r} (known: {', '.join(PARAMETERS)})")
            if key in params:
                raise BadRequest(f"parameter {key!r} given more than once")
            params[key] = value
        if "target" not in params:
            raise BadRequest("missing parameter 'target': /probe?target=NAME[&cname_target=HOST]")
        try:
            name = normalize_domain(params["target"]).name
        except InvalidName as exc:
            raise BadRequest(f"target: {exc}") from None
        target = None
        if params.get("cname_target"):
            try:
                target = normalize_target(params["cname_target"])
            except InvalidName as exc:
                raise BadRequest(f"cname_target: {exc}") from None
        limits = []
        if "timeout" in params:
            limits.append(_seconds_param("timeout", params["timeout"]))
        if header_timeout is not None:
            limits.append(_seconds_param(TIMEOUT_HEADER, header_timeout))
        return ProbeRequest(name, target, self.deadline(min(limits, default=DEFAULT_SCRAPE_TIMEOUT)))

    def deadline(self, timeout: float) -> float:
        """The scrape timeout less the offset, but never under half of it (a 0.5 s scrape timeout with a 0.5 s
        offset still leaves the probe 0.25 s)."""
        return max(timeout - self.timeout_offset, timeout / 2)

    # -- /metrics --------------------------------------------------------------------------------------------

    def metrics(self) -> str:
        with self._stats.lock:
            probes = self._stats.probes
            errors = dict(self._stats.errors)
            duration_sum = self._stats.duration_sum
            in_flight = self._stats.in_flight
        errors_family = Family("kdiag_exporter_probe_errors_total", "counter",
                               "Probe requests that went wrong, by reason: bad_request (400), deadline_exceeded "
                               "(answered at the deadline with probe_success 0), internal_error (500)")
        for reason in ERROR_REASONS:
            errors_family.add(errors[reason], reason=reason)
        families = [
            Family("kdiag_exporter_build_info", "gauge", "kdiag's version; always 1").add(1, version=__version__),
            Family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds")
            .add(round(self.started_at, 3)),
            Family("kdiag_exporter_probes_total", "counter",
                   "Probes answered with metrics (including those that overran their deadline)").add(probes),
            errors_family,
            Family("kdiag_exporter_probe_duration_seconds", "summary",
                   "Time taken to answer probes with metrics",
                   suffixed=[("sum", (), round(duration_sum, 6)), ("count", (), probes)]),
            Family("kdiag_exporter_probes_in_flight", "gauge", "Probes being answered right now").add(in_flight),
        ]
        stats = getattr(getattr(self.diagnoser, "dns", None), "stats", None)
        if stats is not None:
            families += [
                Family("kdiag_exporter_dns_queries_total", "counter",
                       "DNS questions sent to the resolver (cache misses)").add(stats.queries),
                Family("kdiag_exporter_dns_cache_hits_total", "counter",
                       "DNS questions answered from kdiag's cache").add(stats.cache_hits),
            ]
        return exposition(families)

    def _expire_caches(self) -> None:
        """Forget cached DNS answers, handshakes and HTTP results older than cache_max_age (see the module
        docstring). A diagnosis running meanwhile just asks again for what it has not asked yet."""
        with self._caches_lock:
            now = self._clock()
            if now - self._caches_since < self.cache_max_age:
                return
            self._caches_since = now
        self.diagnoser.clear_caches()

    def _count_probe(self, elapsed: float) -> None:
        with self._stats.lock:
            self._stats.probes += 1
            self._stats.duration_sum += elapsed

    def _count_error(self, reason: str) -> None:
        with self._stats.lock:
            self._stats.errors[reason] += 1


def deadline_families(name: str, deadline: float, *, exceeded: bool) -> list[Family]:
    dom = {"domain": name}
    return [
        Family("kdiag_probe_deadline_seconds", "gauge",
               "Time this probe was allowed: the scrape timeout less --timeout-offset").add(round(deadline, 3), **dom),
        Family("kdiag_probe_deadline_exceeded", "gauge",
               "1 when the diagnosis overran the deadline and the probe answered without it").add(int(exceeded),
                                                                                                  **dom),
    ]


def overrun_families(req: ProbeRequest, elapsed: float) -> list[Family]:
    """What a probe that overran its deadline knows: it failed, how long it waited, and why."""
    from kdiag.formats import HELP

    dom = {"domain": req.name}
    return [
        Family("probe_success", "gauge", HELP["probe_success"]).add(0, **dom),
        Family("probe_duration_seconds", "gauge", HELP["probe_duration_seconds"]).add(round(elapsed, 3), **dom),
        Family("kdiag_exit_code", "gauge", HELP["kdiag_exit_code"]).add(EXIT_UNKNOWN, **dom),
        *deadline_families(req.name, req.deadline, exceeded=True),
    ]


def _seconds_param(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name} {text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SCRAPE_TIMEOUT:
        raise BadRequest(f"{name} {text!r} must be more than 0 and at most {MAX_SCRAPE_TIMEOUT:g} seconds")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


# -- HTTP plumbing ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"kdiag/{__version__}"
    protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus expects; every answer carries Content-Length
    timeout = 30  # a client that stops sending cannot hold a thread for ever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(self.server.exporter.handle(self.path, self.headers), body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(self.server.exporter.handle(self.path, self.headers), body=False)

    def _answer(self, response: Response, *, body: bool) -> None:
        data = response.body.encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Prometheus scrapes every few seconds: per-request lines would drown everything else. Problems are
        # printed where they happen (internal errors) or counted in /metrics.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # in-flight requests must not keep a stopping process alive
    block_on_close = False
    exporter: Exporter


class _Server6(_Server):
    address_family = socket.AF_INET6


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` (PORT 0: any free port); raises UsageError."""
    import ipaddress

    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not match:
        raise UsageError(f"--listen {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:9115 or [::1]:9115")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise UsageError(f"--listen {text!r}: port {port} is out of range")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"--listen {text!r}: {host!r} is not an IP address") from None
    return host, port


def make_server(exporter: Exporter, host: str, port: int) -> _Server:
    """Bind (raises OSError: address in use, not available)."""
    cls = _Server6 if ":" in host else _Server
    server = cls((host, port), _Handler)
    server.exporter = exporter
    return server


def run(exporter: Exporter, host: str, port: int, *, ready: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly: no new requests, the listening socket closed, the
    exporter's pool and clients closed. `ready(url)` is called once the socket listens."""
    try:
        server = make_server(exporter, host, port)
    except OSError as exc:
        exporter.close()
        raise UsageError(f"--listen {host}:{port}: {exc.strerror or exc}") from None
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="kdiag-serve", daemon=True)
    thread.start()
    try:
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        ready(f"http://{shown}:{bound_port}/")
        # A timed wait, so the main thread wakes up to run the signal handler promptly.
        while not stop.wait(0.2):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        exporter.close()


def exit_if_work_was_abandoned(code: int = 0) -> None:
    """After `run` returns: end the process now if abandoned diagnoses are still running.

    Python joins every ThreadPoolExecutor worker at exit, daemon or not, so a diagnosis stuck on a silent
    resolver would hold a stopping exporter up for its whole --timeout chain. Its result is no longer wanted and
    it writes nothing, so once the server is closed and the streams are flushed, a hard exit loses nothing.
    """
    busy = [t for t in threading.enumerate() if t is not threading.current_thread() and t.is_alive()]
    if busy:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
