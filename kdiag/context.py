"""Everything a rule may touch: the name under test, the options, and injected clients.

Rules are pure functions of a `Context`. Tests build one pointing at loopback servers; the CLI builds one
from its flags. Nothing here is global.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kdiag.letsencrypt import INTERMEDIATES, Intermediate
from kdiag.targets import ConnectTo, ResolveEntry

if TYPE_CHECKING:  # the probe modules are loaded by whoever builds the clients (kdiag.diagnose, tests)
    from kdiag.konnect.client import KonnectClient
    from kdiag.probes.dns import Dns
    from kdiag.probes.http import Http
    from kdiag.probes.tls import Tls

# What Konnect serverless data planes are reached at; used when --target is not given.
GATEWAY_SUFFIX = "kongcloud.dev"
# The challenge types a CNAME to the gateway allows Let's Encrypt to use (no _acme-challenge delegation).
DEFAULT_METHODS = ("http-01", "tls-alpn-01")
LETSENCRYPT = "letsencrypt.org"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Options:
    """What the user told kdiag to expect.

    Attributes:
        target: the CNAME value Konnect shows (`9e454bcfec.kongcloud.dev`), or None to accept any name under
            `gateway_suffix`.
        validation_methods: the ACME challenge types the certificate issuer is assumed to use; a CAA
            `validationmethods` parameter must allow at least one.
        caa_identity: the issuer domain a CAA issue record must name.
        expiry_warn_days: tls-certificate warns when fewer days than this are left (--expiry-warn-days).
        connect_to, resolve: curl-style overrides of where TLS/HTTP connections go (--connect-to, --resolve);
            SNI, Host and certificate checks still use the name.
        letsencrypt_intermediates: Let's Encrypt intermediates by SKI (hex), matched against a leaf's AKI;
            defaults to the real table in kdiag.letsencrypt.
    """

    target: str | None = None
    gateway_suffix: str = GATEWAY_SUFFIX
    validation_methods: tuple[str, ...] = DEFAULT_METHODS
    caa_identity: str = LETSENCRYPT
    expiry_warn_days: int = 14
    connect_to: tuple[ConnectTo, ...] = ()
    resolve: tuple[ResolveEntry, ...] = ()
    letsencrypt_intermediates: Mapping[str, Intermediate] = field(default_factory=lambda: INTERMEDIATES)
    # konnect-domain-status: the control plane a missing domain should be added to (--control-plane), named in
    # the generated `kdiag konnect domain add` fix; None lets the rule look for the one serverless control plane.
    control_plane: str | None = None


@dataclass(frozen=True)
class Context:
    domain: str
    dns: Dns
    options: Options = field(default_factory=Options)
    now: Callable[[], datetime] = utcnow
    # The TLS and HTTPS clients; None (a context built without them) makes the rules that need them skip.
    tls: Tls | None = None
    http: Http | None = None
    # The Konnect API client (KONNECT_TOKEN set); None makes konnect-domain-status skip.
    konnect: KonnectClient | None = None
