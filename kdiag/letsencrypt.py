"""Recognising a Let's Encrypt certificate: the intermediates' key identifiers, as data.

A leaf is Let's Encrypt's when its Authority Key Identifier equals the Subject Key Identifier of one of LE's
intermediates (BR §7.1.2.7.6 requires the AKI in subscriber certificates; the leaf's own SKI is absent from
`tlsserver`/`shortlived` leaves, so it is never used). When the AKI is unknown (LE rotates intermediates every
year or two and picks one at random per issuance, so never pin a CN), the issuer organisation decides:
exactly `Let's Encrypt`. A staging certificate's issuer organisation is `(STAGING) Let's Encrypt`: a naive
"contains Let's Encrypt" test would accept it, so it is checked first and explicitly.

Source of the table: letsencrypt/website @ b89871e (2026-08-21), `content/en/certificates.md` and the PEMs
under `static/certs/{gen-y,2024}/`; the SKIs were computed from those PEMs with cryptography (see
/work/shared/design/tls-probes-kong.md §2.3). Update it when Let's Encrypt announces new intermediates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is loaded by the functions that need it (see kdiag/probes/tls.py)
    from cryptography import x509

ISSUER_ORG = "Let's Encrypt"
STAGING_ORG = "(STAGING) Let's Encrypt"
# Roots in the major trust stores that LE chains end at; Gen Y roots (Root YE/YR) are not yet in the
# stores, so a chain must carry their cross-signs up to one of these.
TRUSTED_ROOTS = ("ISRG Root X1", "ISRG Root X2")
# Let's Encrypt clients renew at about two thirds of the lifetime (LE post 2025-12-02 "from 90 to 45").
RENEW_AT_FRACTION = 2 / 3


@dataclass(frozen=True)
class Intermediate:
    name: str
    key: str
    status: str  # "active", "backup" or "retired" (as of the source snapshot)
    not_after: str


INTERMEDIATES: Mapping[str, Intermediate] = MappingProxyType({
    # Generation Y (active since 2026-05-28 for every profile), issued by Root YE / Root YR.
    "bb20ca470bfed7e59cf98f092aa38c3745b1bcd8": Intermediate("YE1", "P-384", "active", "2028-09-02"),
    "b959f28ecf22f086d33748ff761418ba82d85587": Intermediate("YE2", "P-384", "active", "2028-09-02"),
    "1f2f35be461482cd40b1ae792c5578faf7d468fb": Intermediate("YR1", "RSA 2048", "active", "2028-09-02"),
    "40152d2679ed32209edf9a721dd6321f810c810c": Intermediate("YR2", "RSA 2048", "active", "2028-09-02"),
    "f6a27ed65e236fdddd4546611e821575cdf1e68e": Intermediate("YE3", "P-384", "backup", "2028-09-02"),
    "696529f933f809b642d5e1f3b5b59d1f5f7a227c": Intermediate("YR3", "RSA 2048", "backup", "2028-09-02"),
    # 2024 generation, retired from issuance (leaves from them stay valid until they expire).
    "9f2b5fcf3c214f9d04b7ed2b2cc4c6708bd2d70d": Intermediate("E5", "P-384", "retired", "2027-03-12"),
    "9327469803a951688e98d6c44248db23bf5894d2": Intermediate("E6", "P-384", "retired", "2027-03-12"),
    "ae489edc871d44a06fdaa2e560740478c29c0080": Intermediate("E7", "P-384", "retired", "2027-03-12"),
    "8f0d13a2f62e7ed1506c3318385d598e237291ca": Intermediate("E8", "P-384", "retired", "2027-03-12"),
    "5d77d14dac4d227859b286598e431cb764591341": Intermediate("E9", "P-384", "retired", "2027-03-12"),
    "bbbcc347a5e4bca9c6c3a4720c108da235e1c8e8": Intermediate("R10", "RSA 2048", "retired", "2027-03-12"),
    "c5cf46a4eaf4c3c07a6c95c42db05e922f26e3b9": Intermediate("R11", "RSA 2048", "retired", "2027-03-12"),
    "00b529f22d8e6f31e89b4cad783efadce90cd1d2": Intermediate("R12", "RSA 2048", "retired", "2027-03-12"),
    "e7ab9f0f2c33a053d35e4f78c8b2840e3bd69233": Intermediate("R13", "RSA 2048", "retired", "2027-03-12"),
    "e51095d8b60c51d7a77235630a54686e0653f8fb": Intermediate("R14", "RSA 2048", "retired", "2027-03-12"),
})


@dataclass(frozen=True)
class Identity:
    """Who issued a leaf, as far as Let's Encrypt is concerned.

    Attributes:
        kind: "letsencrypt", "staging" or "other".
        basis: what decided it: "authority-key-id", "issuer-organization", or "" for "other".
        intermediate: the LE intermediate's name when the AKI matched, else the issuer CN (or "").
        issuer: the issuer DN, RFC 4514.
    """

    kind: str
    basis: str
    intermediate: str
    issuer: str
    status: str = ""


def authority_key_id(cert: x509.Certificate) -> str | None:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier.hex() if ext.value.key_identifier else None


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def identify(leaf: x509.Certificate, intermediates: Mapping[str, Intermediate] = INTERMEDIATES) -> Identity:
    from cryptography.x509.oid import NameOID

    issuer = leaf.issuer
    org = _attr(issuer, NameOID.ORGANIZATION_NAME)
    cn = _attr(issuer, NameOID.COMMON_NAME)
    text = issuer.rfc4514_string()
    if org == STAGING_ORG or cn.startswith("(STAGING)"):
        return Identity("staging", "issuer-organization", cn, text)
    aki = authority_key_id(leaf)
    if aki is not None and aki.lower() in intermediates:
        known = intermediates[aki.lower()]
        return Identity("letsencrypt", "authority-key-id", known.name, text, known.status)
    if org == ISSUER_ORG:
        return Identity("letsencrypt", "issuer-organization", cn, text, "unknown intermediate")
    return Identity("other", "", cn, text)
