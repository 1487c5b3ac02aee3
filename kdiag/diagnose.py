"""One diagnosis pipeline for every front end: `kdiag domain`, `kdiag scan`, `kdiag serve` and `--wait`.

`Settings` is what the user asked for (validated here, so every front end rejects bad input the same way with
a `UsageError`); a `Diagnoser` is built from it once per process — rules loaded, TLS/HTTP/Konnect clients and
one DNS cache shared by every diagnosis — and `diagnose(name, target)` returns a `Report`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kdiag.context import DEFAULT_METHODS, Context, Options
from kdiag.engine import run
from kdiag.errors import UsageError
from kdiag.model import CheckResult, Report
from kdiag.names import InvalidName, normalize_domain, normalize_target
from kdiag.probes.dns import Dns, parse_nameserver, system_nameservers
from kdiag.registry import load_rules, select, split_ids


@dataclass(frozen=True)
class Settings:
    """The options `kdiag domain`, `scan` and `serve` share, as given on the command line."""

    nameservers: tuple[str, ...] = ()
    timeout: float = 5.0
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    validation_methods: tuple[str, ...] = DEFAULT_METHODS
    connect_to: tuple[str, ...] = ()
    resolve: tuple[str, ...] = ()
    ca_bundle: str | None = None
    expiry_warn_days: int = 14
    region: str = "us"
    konnect_url: str | None = None
    control_plane: str | None = None
    plugins: bool = True


@dataclass(frozen=True)
class Diagnosis:
    """A report plus what the CLI needs to word it: was kdiag's resolver silent for this run?"""

    report: Report
    resolver_silent: bool


class Diagnoser:
    """Rules, clients and a DNS cache built once; `diagnose()` may be called many times, from many threads."""

    def __init__(self, settings: Settings, *, dns_cache_size: int = 4096, dns_workers: int = 16,
                 parallel_rules: bool = True) -> None:
        self.settings = settings
        # `domain` and `serve` run one name's rules side by side (its time is the longest chain of round
        # trips); `scan` runs many names side by side instead (see kdiag.engine.run).
        self.parallel_rules = parallel_rules
        methods = tuple(m.strip() for m in settings.validation_methods if m.strip())
        if not methods:
            raise UsageError("--validation-methods needs at least one method, e.g. http-01")
        self.rules = select(load_rules(plugins=settings.plugins), split_ids(settings.only), split_ids(settings.skip))
        overrides, self.tls, self.http = _make_net(settings)
        self.konnect, control_plane = _make_konnect(settings)
        self._options = Options(validation_methods=methods, expiry_warn_days=settings.expiry_warn_days,
                                control_plane=control_plane, **overrides)
        # Every rule fans its questions out through the Dns pool; `scan` runs many diagnoses at once and needs
        # more workers than one diagnosis (16), or the pool rather than the network would cap its rate.
        self.dns = _make_dns(settings, dns_cache_size, dns_workers)
        # One pool for the rules of every diagnosis this Diagnoser runs (see kdiag.engine.run).
        self._rule_pool = ThreadPoolExecutor(max_workers=max(len(self.rules), dns_workers),
                                             thread_name_prefix="kdiag-rule")

    def diagnose(self, name: str, target: str | None = None) -> Diagnosis:
        """Check one name; raises UsageError for a name or target that is not valid."""
        try:
            normalized = normalize_domain(name)
            expected = normalize_target(target) if target else None
        except InvalidName as exc:
            raise UsageError(str(exc)) from None
        options = replace(self._options, target=expected)
        ctx = Context(domain=normalized.name, dns=self.dns, options=options, tls=self.tls, http=self.http,
                      konnect=self.konnect)
        started_at = datetime.now(UTC)
        started = time.monotonic()
        before = (self.dns.stats.queries, self.dns.stats.answered)
        results: list[CheckResult] = run(self.rules, ctx, pool=self._rule_pool, parallel=self.parallel_rules)
        asked = self.dns.stats.queries - before[0]
        answered = self.dns.stats.answered - before[1]
        report = Report(
            domain=normalized.name,
            target=expected,
            started_at=started_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            duration_ms=round((time.monotonic() - started) * 1000),
            checks=results,
            notes=normalized.notes,
        )
        return Diagnosis(report, resolver_silent=asked > 0 and answered == 0)

    def prefetch(self, names: Iterable[str]) -> int:
        """Ask, all at once, the DNS questions the rules declare they ask first (`Rule.asks`) for every name;
        the diagnoses of these names then find the answers cached. Names must be normalised (scan's input
        is). Returns how many questions went out."""
        asks = [r.asks for r in self.rules if r.asks is not None]
        if not asks:
            return 0
        questions: list[tuple[str, str]] = []
        for name in names:
            for ask in asks:
                try:
                    questions.extend(ask(name))
                except Exception:  # noqa: BLE001 - only an optimisation; the rule itself will show its bug
                    continue
        return self.dns.prefetch(questions)

    def clear_caches(self) -> None:
        """Forget cached DNS answers, handshakes and HTTP responses, so the next diagnosis sees fresh data
        (`serve` between scrapes, `--wait` between tries)."""
        self.dns.clear()
        self.tls.clear()
        self.http.clear()

    def close(self) -> None:
        self._rule_pool.shutdown(wait=False, cancel_futures=True)
        self.dns.close()
        if self.konnect is not None:
            self.konnect.close()

    def __enter__(self) -> Diagnoser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_net(settings: Settings) -> tuple[dict[str, Any], Any, Any]:
    """Parse --connect-to/--resolve (UsageError on bad syntax) and build the TLS and HTTPS clients."""
    from kdiag.probes.http import Http
    from kdiag.probes.tls import Tls, read_bundle
    from kdiag.targets import parse_connect_to, parse_resolve

    overrides = {"connect_to": tuple(parse_connect_to(c) for c in settings.connect_to),
                 "resolve": tuple(parse_resolve(r) for r in settings.resolve)}
    bundle = b""
    if settings.ca_bundle is not None:
        try:
            bundle = read_bundle(settings.ca_bundle)
        except ValueError as exc:
            raise UsageError(f"--ca-bundle: {exc}") from None
    tls = Tls(timeout=settings.timeout, extra_pem=bundle, extra_source=f"--ca-bundle {settings.ca_bundle}")
    return overrides, tls, Http(timeout=settings.timeout)


def _make_konnect(settings: Settings) -> tuple[Any, str | None]:
    """(The Konnect client when KONNECT_TOKEN is set, else None; the normalised --control-plane).

    The token's shape and the control-plane id are checked here, before any request."""
    control_plane = settings.control_plane
    if control_plane is not None:
        try:
            control_plane = str(uuid.UUID(control_plane))
        except ValueError:
            raise UsageError(f"--control-plane {control_plane!r} is not a UUID") from None
    if not os.environ.get("KONNECT_TOKEN", "").strip():
        return None, control_plane  # without a token there is no client, and no need to import httpx
    from kdiag.konnect.client import KonnectClient, check_token, token_from_env

    token = token_from_env()
    return KonnectClient(check_token(token), region=settings.region, base_url=settings.konnect_url,
                         timeout=max(settings.timeout, 1.0)), control_plane


def _make_dns(settings: Settings, cache_size: int, workers: int) -> Dns:
    try:
        servers = [parse_nameserver(ns) for ns in settings.nameservers]
    except ValueError as exc:
        raise UsageError(f"--nameserver: {exc}") from None
    if not servers:
        servers = system_nameservers()
        if not servers:
            raise UsageError("no resolver configured on this machine; pass --nameserver ADDR")
    return Dns(servers, timeout=settings.timeout, cache_size=cache_size, max_workers=workers)
