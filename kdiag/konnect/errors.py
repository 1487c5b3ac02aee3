"""Konnect API errors, apart from the client so that code which only catches them (the konnect-domain-status
rule, imported on every run) does not pay for importing httpx."""

from __future__ import annotations

from typing import Any

from kdiag.errors import KdiagError


class KonnectError(KdiagError):
    """A Konnect request failed; `str()` is one line naming the request and what Konnect said."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class KonnectTokenError(KonnectError):
    """KONNECT_TOKEN is missing or malformed; nothing was sent."""


class KonnectAuthError(KonnectError):
    """401 or 403."""


class KonnectNotFound(KonnectError):
    """404."""


class KonnectConflict(KonnectError):
    """409."""


class KonnectUnavailable(KonnectError):
    """Konnect could not be asked: unreachable, timed out, 5xx or rate limited after the retries."""
