"""The JSON Schema (draft 2020-12) of `kdiag domain --format json`, printed by `kdiag schema`.

The document is a contract (README "JSON output"): within schema version 1.x fields may be added, never renamed
or removed. So the published schema does not forbid unknown properties (a consumer validating with the 1.0
schema must accept a 1.1 document); the test suite validates real output against a stricter copy that does,
so a field kdiag starts emitting cannot go undocumented here (tests/test_schema.py).

Beyond field types the schema states the exit-code contract: `exit_code` follows `status`, and `status` is the
worst of the checks' statuses (fail > error > warn > pass; skip counts as pass); a failed check always
carries its remediation.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "urn:kdiag:schema:report:1"

# Rule ids and codes are kebab-case (kdiag.declare._ID).
_KEBAB = "^[a-z0-9]+(-[a-z0-9]+)*$"
_STATUS_EXIT = {"pass": 0, "warn": 1, "fail": 2, "error": 3}


def _has_check(*statuses: str) -> dict[str, Any]:
    """The checks array holds a check whose status is one of `statuses`."""
    return {"properties": {"checks": {"contains": {"properties": {"status": {"enum": list(statuses)}}}}}}


def _lacks_check(*statuses: str) -> dict[str, Any]:
    return {"not": _has_check(*statuses)}


# status -> what the checks must then look like: the overall status is the worst check status.
_WORST = {
    "pass": [_lacks_check("warn", "fail", "error")],
    "warn": [_has_check("warn"), _lacks_check("fail", "error")],
    "error": [_has_check("error"), _lacks_check("fail")],
    "fail": [_has_check("fail")],
}

_STRINGS = {"type": "array", "items": {"type": "string"}}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "kdiag domain report",
    "description": "The document `kdiag domain NAME --format json` prints. Within schema_version 1.x fields may "
                   "be added, never renamed or removed.",
    "type": "object",
    "required": ["schema_version", "tool", "domain", "target", "started_at", "duration_ms", "status",
                 "exit_code", "notes", "checks"],
    "properties": {
        "schema_version": {"type": "string", "pattern": r"^1\.[0-9]+$",
                           "description": "Major.minor; this schema describes major version 1."},
        "tool": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {
                "name": {"const": "kdiag"},
                "version": {"type": "string", "minLength": 1},
            },
        },
        "domain": {"type": "string", "minLength": 1, "maxLength": 253,
                   "pattern": r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
                   "description": "The name checked, normalised: lower-case A-labels, no trailing dot."},
        "target": {"type": ["string", "null"],
                   "description": "The expected CNAME target (--target), or null when any gateway name is "
                                  "accepted."},
        "started_at": {"type": "string", "format": "date-time",
                       "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$",
                       "description": "RFC 3339, UTC, with a Z."},
        "duration_ms": {"type": "integer", "minimum": 0},
        "status": {"enum": list(_STATUS_EXIT),
                   "description": "The worst check status: fail > error > warn > pass (skip counts as pass)."},
        "exit_code": {"enum": sorted(_STATUS_EXIT.values()),
                      "description": "The process exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."},
        "notes": {**_STRINGS, "description": "What kdiag changed in the input, e.g. a URL reduced to its host."},
        "checks": {"type": "array", "items": {"$ref": "#/$defs/check"}},
    },
    "allOf": [
        {"if": {"properties": {"status": {"const": status}}, "required": ["status"]},
         "then": {"properties": {"exit_code": {"const": code}}, "allOf": _WORST[status]}}
        for status, code in _STATUS_EXIT.items()
    ],
    "$defs": {
        "check": {
            "type": "object",
            "required": ["id", "title", "status", "code", "message", "remediation", "facts", "duration_ms"],
            "properties": {
                "id": {"type": "string", "pattern": _KEBAB, "description": "The rule id (`kdiag rules`)."},
                "title": {"type": "string", "description": "What pass means, as a sentence."},
                "status": {"enum": ["pass", "warn", "fail", "error", "skip"]},
                "code": {"type": "string", "pattern": _KEBAB,
                         "description": "A code from the rule's closed list (rules/<id>.md)."},
                "message": {"type": "string"},
                "remediation": {"oneOf": [{"type": "null"}, {"$ref": "#/$defs/remediation"}]},
                "facts": {"type": "object", "description": "What was observed; keys depend on the rule."},
                "duration_ms": {"type": "integer", "minimum": 0},
            },
            # The product promise: every failure comes with its fix.
            "if": {"properties": {"status": {"const": "fail"}}, "required": ["status"]},
            "then": {"properties": {"remediation": {"$ref": "#/$defs/remediation"}}},
        },
        "remediation": {
            "type": "object",
            "required": ["summary", "records", "delete", "commands"],
            "properties": {
                "summary": {"type": "string", "minLength": 1},
                "records": {**_STRINGS, "description": "Zone-file lines to create."},
                "delete": {**_STRINGS, "description": "Zone-file lines to remove."},
                "commands": {**_STRINGS, "description": "Shell commands, every argument quoted."},
            },
        },
    },
}


def render_schema() -> str:
    return json.dumps(SCHEMA, indent=2, ensure_ascii=False)
