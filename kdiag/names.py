"""Turning what a user typed into a domain name Let's Encrypt could issue for, or a one-line reason why not.

The checks follow Boulder's `policy/pa.go` where it matters for a custom domain: ASCII LDH labels of 1-63
octets, at most 253 octets in all, no leading or trailing hyphen, no reserved `??--` labels other than valid
`xn--` punycode, no IP literals, no wildcards. Unicode input is converted to its A-label with UTS-46
non-transitional processing (`ß` stays `ß`, as IDNA 2008 requires), which Python's built-in codec
(IDNA 2003) gets wrong.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

MAX_NAME = 253
MAX_LABEL = 63
_LDH = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class InvalidName(ValueError):
    """The input cannot be a custom domain name; the message says why, in one line."""


@dataclass(frozen=True)
class NormalizedName:
    """A checked domain name (lowercase A-labels, no trailing dot) and notes on what was changed."""

    name: str
    notes: tuple[str, ...] = ()


def normalize_domain(raw: str) -> NormalizedName:
    """Normalise user input to a domain name, or raise `InvalidName`."""
    notes: list[str] = []
    text = raw.strip()
    if not text:
        raise InvalidName("the domain name is empty")
    host = _strip_url(text, notes)
    if host.endswith("."):
        host = host[:-1]
        if host.endswith("."):
            raise InvalidName(f"{raw!r} has an empty label")
    if not host:
        raise InvalidName(f"{raw!r} has no domain name in it")
    if _is_ip_literal(host):
        raise InvalidName(f"{host} is an IP address; a custom domain must be a DNS name")
    if host.startswith("*."):
        raise InvalidName(
            f"{host} is a wildcard; Let's Encrypt issues wildcards only through DNS-01, which a CNAME "
            "to a serverless gateway cannot provide: check a concrete name such as my.example.com"
        )
    name = _to_alabels(host, raw)
    if name != host.lower():
        notes.append(f"checking {name} (the A-label form of {host})")
    _check_ldh(name)
    return NormalizedName(name, tuple(notes))


def normalize_target(raw: str) -> str:
    """The CNAME value Konnect shows, with or without a trailing dot; raises `InvalidName`."""
    text = raw.strip()
    if "://" in text or "/" in text:
        raise InvalidName(f"--target {raw!r} looks like a URL; give the CNAME value, e.g. 9e454bcfec.kongcloud.dev")
    return normalize_domain(text).name


def _strip_url(text: str, notes: list[str]) -> str:
    """Accept a pasted URL or host:port and keep only the host, saying so in a note."""
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            raise InvalidName(f"{text!r} is not a valid URL: {exc}") from None
        if not host:
            raise InvalidName(f"{text!r} is a URL without a host name")
        # urlsplit lowercases the host; keep the user's bracket-free IPv6 form for the IP-literal check.
        # The note goes to stderr (often a CI log): never echo a user:password@ part.
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        notes.append(f"{shown} looks like a URL; checking its host name {host}")
        return host
    if "/" in text:
        host = text.split("/", 1)[0]
        notes.append(f"ignoring the path in {text}; checking {host}")
        text = host
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        if port.isdigit():
            if not 0 < int(port) < 65536:
                raise InvalidName(f"{text!r} has an invalid port {port}")
            notes.append(f"ignoring the port in {text}; checking {host}")
            return host
    return text


def _is_ip_literal(host: str) -> bool:
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _to_alabels(host: str, raw: str) -> str:
    if host.isascii():
        name = host.lower()
        for label in name.split("."):
            if label.startswith("xn--"):
                _check_punycode(label, raw)
        return name
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidName(f"{host!r} is not a valid internationalised domain name: {exc}") from None


def _check_punycode(label: str, raw: str) -> None:
    """An A-label must decode, be NFC and encode back to itself (Boulder: "malformed punycode")."""
    try:
        ulabel = idna.decode(label)
        ok = unicodedata.is_normalized("NFC", ulabel) and idna.encode(ulabel).decode("ascii") == label
    except (idna.IDNAError, UnicodeError):
        ok = False
    if not ok:
        raise InvalidName(f"{raw.strip()!r} contains malformed punycode ({label})")


def _check_ldh(name: str) -> None:
    if len(name) > MAX_NAME:
        raise InvalidName(f"the name is {len(name)} characters long; DNS allows at most {MAX_NAME}")
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidName(f"{name} is a single label; give a fully qualified name such as my.example.com")
    for label in labels:
        if not label:
            raise InvalidName(f"{name} has an empty label")
        if len(label) > MAX_LABEL:
            raise InvalidName(
                f"the label {label[:20]}… is {len(label)} characters long; DNS allows at most {MAX_LABEL}")
        if not _LDH.match(label):
            bad = sorted({c for c in label if not (c.isascii() and (c.isalnum() or c == "-"))})
            if bad:
                chars = " ".join(repr(c) for c in bad)
                raise InvalidName(f"{name} contains invalid characters ({chars}); use letters, digits and hyphens")
            raise InvalidName(f"the label {label!r} in {name} starts or ends with a hyphen")
        if label[2:4] == "--" and not label.startswith("xn--"):
            raise InvalidName(f"the label {label!r} in {name} uses the reserved form '??--'")
    if labels[-1].isdigit():
        raise InvalidName(f"{name} ends in a numeric label; a top-level domain is never all digits")
