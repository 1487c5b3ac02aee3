"""kdiag: DNS and certificate diagnostics for custom domains on Kong Konnect serverless gateways.

The public API for rule plugins is re-exported here lazily, so `kdiag --version` does not pay for importing
dnspython and cryptography.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "CheckResult",
    "Context",
    "DnsRecord",
    "Finding",
    "Options",
    "Remediation",
    "Report",
    "Rule",
    "Status",
    "__version__",
    "errored",
    "failed",
    "passed",
    "rule",
    "skipped",
    "warned",
]

_LAZY = {
    "CheckResult": "kdiag.model",
    "DnsRecord": "kdiag.model",
    "Finding": "kdiag.model",
    "Remediation": "kdiag.model",
    "Report": "kdiag.model",
    "Status": "kdiag.model",
    "Context": "kdiag.context",
    "Options": "kdiag.context",
    "Rule": "kdiag.declare",
    "rule": "kdiag.declare",
    "passed": "kdiag.declare",
    "warned": "kdiag.declare",
    "failed": "kdiag.declare",
    "skipped": "kdiag.declare",
    "errored": "kdiag.declare",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kdiag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
