"""Konnect's regions (geos), importable without httpx so the CLI can offer them as choices cheaply."""

from __future__ import annotations

# The geos of the regional APIs (control-planes v2 `servers:`); SG needs an org-admin opt-in.
REGIONS = ("us", "eu", "au", "me", "in", "sg")
# Bound on each Konnect request (connect, read, write, pool), in seconds.
DEFAULT_TIMEOUT = 15.0
