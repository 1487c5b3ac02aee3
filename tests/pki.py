"""Certificates made at test time with cryptography; nothing here is ever written to the repository.

The hierarchy imitates the real one closely enough for kdiag's checks:

    fake "ISRG Root X1"  ->  "O=Let's Encrypt, CN=R11"  ->  leaf
                              (its SKI is the real R11's, so kdiag's production AKI table recognises the leaf)
    fake "ISRG Root X1"  ->  "O=Let's Encrypt, CN=R99"  ->  leaf   (unknown intermediate: issuer-O fallback)
    "Other Trust Services Root" -> "Other DV CA" -> leaf            (another issuer)
    "(STAGING) Pretend Pear X1" -> "(STAGING) Counterfeit Cashew R10" -> leaf
    Kong's default: self-signed C=US, ST=California, L=San Francisco, O=Kong, OU=IT Department, CN=localhost

EC P-256 keys everywhere except Kong's default (RSA 2048, as Kong generates it), so a session's PKI takes
milliseconds. Validity is relative to the real clock, so no certificate here can ever "expire" in CI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kdiag.letsencrypt import INTERMEDIATES

R11_SKI = bytes.fromhex(next(k for k, v in INTERMEDIATES.items() if v.name == "R11"))
DAY = dt.timedelta(days=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(cn: str, org: str | None = None, **extra: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]
    for oid, value in ((NameOID.STATE_OR_PROVINCE_NAME, extra.get("st")), (NameOID.LOCALITY_NAME, extra.get("l"))):
        if value:
            attrs.append(x509.NameAttribute(oid, value))
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if extra.get("ou"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, extra["ou"]))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


@dataclass
class Ca:
    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)  # what a server sends above its leaves


@dataclass
class Served:
    """A leaf, the certificates served after it, and the leaf's key: what a TLS server presents."""

    chain: list[x509.Certificate]
    key: PrivateKey

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """PEM files for ssl.SSLContext.load_cert_chain (in a pytest tmp dir, never in the repository)."""
        cert = directory / f"{stem}.crt"
        key = directory / f"{stem}.key"
        cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain))
        key.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert, key


def _ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ski(key: PrivateKey) -> bytes:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest


def root(cn: str, org: str) -> Ca:
    key = _ec()
    name = _name(cn, org)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - 365 * DAY).not_valid_after(now() + 3650 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(_ski(key)), critical=False)
            .sign(key, hashes.SHA256()))
    return Ca(cert, key)


def intermediate(parent: Ca, cn: str, org: str, *, ski: bytes | None = None) -> Ca:
    key = _ec()
    cert = (x509.CertificateBuilder().subject_name(_name(cn, org)).issuer_name(parent.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now() - 200 * DAY).not_valid_after(now() + 900 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier(ski or _ski(key)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(_ski_of(parent.cert), None, None), critical=False)
            .sign(parent.key, hashes.SHA256()))
    return Ca(cert, key, [cert])


def _ski_of(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def leaf(ca: Ca, *names: str, not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
         with_chain: bool = True) -> Served:
    """A server certificate for `names` (SANs only, no CN, like LE's tlsserver profile) issued by `ca`."""
    key = _ec()
    start = not_before or now() - 10 * DAY
    end = not_after or start + 90 * DAY
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(_ski_of(ca.cert), None, None), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Served([cert, *(ca.chain if with_chain else [])], key)


def kong_default() -> Served:
    """Kong's auto-generated default certificate (kong/cmd/utils/prefix_handler.lua): self-signed, RSA 2048."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name("localhost", "Kong", st="California", l="San Francisco", ou="IT Department")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - DAY).not_valid_after(now() + 7300 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Served([cert], key)


class Pki:
    """Every CA the tests need, made once per session."""

    def __init__(self) -> None:
        self.isrg = root("ISRG Root X1", "Internet Security Research Group")
        self.r11 = intermediate(self.isrg, "R11", "Let's Encrypt", ski=R11_SKI)
        self.r99 = intermediate(self.isrg, "R99", "Let's Encrypt")
        self.other_root = root("Other Trust Services Root", "Other Trust Services")
        self.other = intermediate(self.other_root, "Other DV CA", "Other Trust Services")
        self.staging_root = root("(STAGING) Pretend Pear X1", "(STAGING) Internet Security Research Group")
        self.staging = intermediate(self.staging_root, "(STAGING) Counterfeit Cashew R10", "(STAGING) Let's Encrypt")
        self.kong = kong_default()

    @property
    def anchors(self) -> list[x509.Certificate]:
        """Roots a test trusts (the fake ISRG and the other CA; never staging, as in real trust stores)."""
        return [self.isrg.cert, self.other_root.cert]

    def anchors_pem(self, path: Path) -> Path:
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.anchors))
        return path
