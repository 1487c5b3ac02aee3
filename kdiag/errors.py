"""kdiag's exceptions. Rule outcomes are never exceptions; these are for misuse and broken set-ups.

* KdiagError              -- anything kdiag reports as one line `kdiag: error: …` and exit 3
  + UsageError            -- bad input: a malformed name, an unknown rule id, a bad flag value
  + RuleLoadError         -- a plugin could not be imported, gave a non-Rule, or reused an id
"""

from __future__ import annotations


class KdiagError(Exception):
    """An error the CLI reports in one line; never a traceback."""

    # True when the run already printed its machine-readable document on stdout (e.g. a Nagios line for a
    # silent resolver), so the CLI must not add a second one.
    reported: bool = False


class UsageError(KdiagError):
    """The user asked for something kdiag cannot do as asked."""


class RuleLoadError(KdiagError):
    """A rule plugin is broken; kdiag stops rather than silently running fewer checks."""
