"""What Konnect's answers say about a serverless gateway: the CNAME target a custom domain needs, and ages.

No public Konnect API field carries the CNAME target of a serverless custom domain (the UI shows it). The
derivation here is the documented pattern, not a contract: the target's first label is the control plane's
10-hex "prefix" (the first DNS label of `config.control_plane_endpoint`), then `kongcloud.dev` for Serverless
V0 (`CLUSTER_TYPE_SERVERLESS`) or `<geo>.serverless.gateways.konggateway.com` for Serverless V1. Callers must
present it as derived, and prefer a `--target` the user copied from Konnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

SERVERLESS_V0 = "CLUSTER_TYPE_SERVERLESS"
SERVERLESS_V1 = "CLUSTER_TYPE_SERVERLESS_V1"
V1_SUFFIX = "serverless.gateways.konggateway.com"


@dataclass(frozen=True)
class DerivedTarget:
    """A CNAME target worked out from a control plane, and how (for facts and messages)."""

    target: str | None
    how: str


def cp_prefix(cp: dict[str, Any]) -> str | None:
    endpoint = str((cp.get("config") or {}).get("control_plane_endpoint") or "")
    host = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname or ""
    label = host.split(".", 1)[0]
    return label or None


def derive_target(cp: dict[str, Any], geo: str, v0_suffix: str = "kongcloud.dev") -> DerivedTarget:
    cluster_type = (cp.get("config") or {}).get("cluster_type")
    prefix = cp_prefix(cp)
    if prefix is None:
        return DerivedTarget(None, f"control plane {cp.get('id')} has no control_plane_endpoint to derive from")
    if cluster_type == SERVERLESS_V1:
        target = f"{prefix}.{geo}.{V1_SUFFIX}"
    elif cluster_type == SERVERLESS_V0:
        target = f"{prefix}.{v0_suffix}"
    else:
        return DerivedTarget(None, f"control plane {cp.get('id')} is {cluster_type}, not a serverless one")
    return DerivedTarget(target, f"derived (not read: Konnect's API does not expose it) from the endpoint prefix "
                                 f"{prefix} of {cluster_type} control plane {cp.get('id')}; confirm it in Konnect "
                                 "→ Custom Domains, or pass --target")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from Konnect, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def ago(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 days`."""
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{round(s / 86400)} days"
