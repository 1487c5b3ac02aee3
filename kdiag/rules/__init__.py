"""The built-in rules, in the order they are reported. Adding a rule: write its module, list it here, write
its page in rules/<id>.md and its pass/fail fixtures (tests/test_docs.py keeps them in step)."""

from __future__ import annotations

from kdiag.declare import Rule
from kdiag.rules.caa_permits_letsencrypt import caa_permits_letsencrypt
from kdiag.rules.dns_cname_target import dns_cname_target
from kdiag.rules.konnect_domain_status import konnect_domain_status
from kdiag.rules.public_reachability import public_reachability
from kdiag.rules.tls_certificate import tls_certificate

BUILTIN: tuple[Rule, ...] = (
    dns_cname_target,
    caa_permits_letsencrypt,
    tls_certificate,
    public_reachability,
    konnect_domain_status,
)
