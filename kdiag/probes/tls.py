"""TLS handshakes that capture the chain as served, and the offline checks kdiag runs on it.

A browser-like handshake that *verifies* stops at the first problem and says little about it. kdiag instead
handshakes with SNI = the name and verification off (`CERT_NONE`), keeps the certificates exactly as the server
sent them, then checks them separately (hostname, validity window, chain completeness, trust through
`cryptography.x509.verification`) so each fault gets its own code. Outcomes are data: no exception leaves
`Tls.handshake`.

Chain capture: Python 3.13 has `SSLSocket.get_unverified_chain()`; 3.10-3.12 only the private
`sslsock._sslobj.get_unverified_chain()`, whose `_ssl.Certificate` items are turned into DER with
`public_bytes(_ssl.ENCODING_DER)` (never `repr()`ed: on 3.11 that raises "unknown error" for an empty subject,
which Let's Encrypt's `tlsserver`/`shortlived` leaves have). Should the private API be missing or fail, kdiag
repeats the handshake capped at TLS 1.2, where the Certificate message travels in clear, and reads the chain
from the bytes the server sent (`_sniff_chain`). When that fails too, `getpeercert(binary_form=True)` gives the
leaf alone and `Handshake.chain_captured` is False (completeness is then not judged).
"""

from __future__ import annotations

import _ssl  # ENCODING_DER for the private chain API's Certificate objects
import base64
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from kdiag.probes.cache import SingleFlightCache

if TYPE_CHECKING:
    from cryptography import x509

# cryptography is imported inside the functions that parse certificates: loading it costs ~80 ms of CPU here,
# a third of a whole `kdiag domain` run, which runs that need no certificate (--only, scan of DNS rules,
# --version, konnect commands) should not pay.

# Handshake outcomes. The first three mean nothing answered at TCP level.
OK = "ok"
REFUSED = "refused"
CONNECT_TIMEOUT = "connect-timeout"
CONNECT_ERROR = "connect-error"
TLS_ERROR = "tls-error"  # the server answered, but the handshake failed (alert, not TLS, closed)
TLS_TIMEOUT = "tls-timeout"  # TCP accepted, then silence
NOT_CONNECTED = frozenset({REFUSED, CONNECT_TIMEOUT, CONNECT_ERROR})
LEAF_ONLY = "leaf-only"

# Where Linux distributions keep the system trust bundle, for when OpenSSL's compiled-in default is absent.
_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem",
            "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/ca-bundle.pem")
_PARSE_LOCK = threading.Lock()
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class Handshake:
    """One TLS handshake to address:port with SNI = sni.

    Attributes:
        outcome: OK, REFUSED, CONNECT_TIMEOUT, CONNECT_ERROR, TLS_ERROR or TLS_TIMEOUT.
        alert: for TLS_ERROR, the TLS alert or OpenSSL reason in lower case ("handshake_failure").
        chain: DER certificates in the order the server sent them (leaf first).
        chain_captured: False when only the leaf could be read (no chain API on this Python).
        chain_source: how the chain was read: "get_unverified_chain" (3.13+), "_sslobj" (3.10-3.12),
            "tls12-certificate-message" (the TLS 1.2 fallback) or "leaf-only".
    """

    address: str
    port: int
    sni: str
    outcome: str
    error: str = ""
    alert: str = ""
    chain: tuple[bytes, ...] = ()
    chain_captured: bool = True
    version: str = ""
    elapsed_ms: float = 0.0
    chain_source: str = ""

    @property
    def connected(self) -> bool:
        return self.outcome not in NOT_CONNECTED

    @property
    def endpoint(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def client_context() -> ssl.SSLContext:
    """A client context that completes the handshake whatever the certificate: checks happen afterwards."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # must be switched off before verify_mode
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deadline(sock: socket.socket, timeout: float) -> tuple[threading.Event, threading.Timer]:
    """Shut `sock` down after `timeout` seconds, which wakes a read blocked on it; returns (fired, timer).

    A socket timeout bounds each read, not a whole exchange: a peer that trickles one byte per read would hold
    kdiag for minutes. Callers cancel the timer when done and check `fired` to tell a deadline from an error.
    """
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(timeout, fire)
    timer.daemon = True
    timer.start()
    return fired, timer


def connect(address: str, port: int, sni: str, timeout: float,
            alpn: Sequence[str] = ()) -> tuple[ssl.SSLSocket | None, str, str, str]:
    """TCP connect then TLS handshake; returns (socket or None, outcome, error, alert). Never raises.

    `timeout` bounds the connect and, separately, each read of the handshake: a server that accepts and then
    says nothing costs at most twice the timeout.
    """
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except ConnectionRefusedError:
        return None, REFUSED, "connection refused (nothing listens there)", ""
    except TimeoutError:
        return None, CONNECT_TIMEOUT, f"no TCP answer within {timeout:g} s", ""
    except OSError as exc:
        return None, CONNECT_ERROR, exc.strerror or str(exc) or type(exc).__name__, ""
    ctx = client_context()
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    # The socket timeout bounds each read; a server dribbling its handshake byte by byte gets a deadline for
    # the whole handshake too.
    aborted, timer = deadline(raw, timeout)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=sni)
    except TimeoutError:
        raw.close()
        return None, TLS_TIMEOUT, f"TCP connected, but no TLS handshake within {timeout:g} s", ""
    except ssl.SSLError as exc:
        raw.close()
        if aborted.is_set():
            return None, TLS_TIMEOUT, f"TCP connected, but no complete TLS handshake within {timeout:g} s", ""
        alert = _alert(exc)
        return None, TLS_ERROR, _describe_ssl_error(exc, alert), alert
    except OSError as exc:
        raw.close()
        if aborted.is_set():
            return None, TLS_TIMEOUT, f"TCP connected, but no complete TLS handshake within {timeout:g} s", ""
        return None, TLS_ERROR, f"the connection was closed during the TLS handshake ({_oserror(exc)})", \
            "connection-closed"
    finally:
        timer.cancel()
    if aborted.is_set():  # the deadline hit just as the handshake finished: the socket is already shut
        tls.close()
        return None, TLS_TIMEOUT, f"TCP connected, but no complete TLS handshake within {timeout:g} s", ""
    return tls, OK, "", ""


def _alert(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or ""
    match = re.match(r"^(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$", reason)
    if match:
        return match.group(1).lower()
    if reason == "TLSV1_UNRECOGNIZED_NAME":
        return "unrecognized_name"
    if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        return "connection-closed"
    return reason.lower() or type(exc).__name__


def _describe_ssl_error(exc: ssl.SSLError, alert: str) -> str:
    reason = getattr(exc, "reason", None) or ""
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"):
        return f"the server does not speak TLS there ({reason})"
    if alert == "connection-closed":
        return "the server closed the connection during the TLS handshake"
    if reason and "ALERT" in reason or alert == "unrecognized_name":
        return f"the server sent the TLS alert {alert}"
    return f"TLS handshake failed: {reason or exc}"


def _oserror(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _capture(tls: ssl.SSLSocket) -> tuple[tuple[bytes, ...], str]:
    public = getattr(tls, "get_unverified_chain", None)  # Python 3.13+
    try:
        if public is not None:
            return tuple(bytes(c) for c in public()), "get_unverified_chain"
        sslobj = getattr(tls, "_sslobj", None)
        chain = sslobj.get_unverified_chain() if sslobj is not None else None
        if chain:
            return tuple(c.public_bytes(_ssl.ENCODING_DER) for c in chain), "_sslobj"
    except (AttributeError, ssl.SSLError, ValueError):
        pass  # private API gone, changed, or choking on an empty subject: fall back
    leaf = tls.getpeercert(binary_form=True)
    return ((leaf,) if leaf else ()), LEAF_ONLY


def _sniff_chain(address: str, port: int, sni: str, timeout: float) -> tuple[bytes, ...] | None:
    """A TLS 1.2 handshake through memory BIOs, keeping the server's bytes to read the Certificate message."""
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pending = outgoing.read()
                    if pending:
                        sock.sendall(pending)
                    if time.monotonic() > deadline:
                        return None
                    chunk = sock.recv(65536)
                    if not chunk:
                        return None
                    received += chunk
                    incoming.write(chunk)
    except (OSError, ssl.SSLError):
        return None
    return _certificates_from_records(bytes(received))


def _certificates_from_records(data: bytes) -> tuple[bytes, ...] | None:
    """The DER certificates of the first Certificate handshake message (RFC 5246 §7.4.2) in TLS records."""
    handshake = bytearray()
    i = 0
    while i + 5 <= len(data):
        kind, length = data[i], int.from_bytes(data[i + 3:i + 5], "big")
        if kind == 20:  # ChangeCipherSpec: what follows is encrypted
            break
        if kind == 22:
            handshake += data[i + 5:i + 5 + length]
        i += 5 + length
    j = 0
    while j + 4 <= len(handshake):
        msg_type, msg_len = handshake[j], int.from_bytes(handshake[j + 1:j + 4], "big")
        body = bytes(handshake[j + 4:j + 4 + msg_len])
        if msg_type == 11:  # Certificate
            certs, k, total = [], 3, int.from_bytes(body[:3], "big")
            while k < 3 + total:
                cert_len = int.from_bytes(body[k:k + 3], "big")
                certs.append(body[k + 3:k + 3 + cert_len])
                k += 3 + cert_len
            return tuple(certs)
        j += 4 + msg_len
    return None


def handshake(address: str, port: int, sni: str, timeout: float) -> Handshake:
    started = time.monotonic()
    tls, outcome, error, alert = connect(address, port, sni, timeout)
    chain: tuple[bytes, ...] = ()
    source = ""
    version = ""
    if tls is not None:
        try:
            chain, source = _capture(tls)
            version = tls.version() or ""
        finally:
            tls.close()
        if source == LEAF_ONLY:
            sniffed = _sniff_chain(address, port, sni, timeout)
            if sniffed and (not chain or sniffed[0] == chain[0]):
                chain, source = sniffed, "tls12-certificate-message"
    return Handshake(address, port, sni, outcome, error, alert, chain, source != LEAF_ONLY, version,
                     round((time.monotonic() - started) * 1000, 1), source)


# -- trust anchors -----------------------------------------------------------------------------------------


def load_pem_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, skipping blocks cryptography cannot parse (odd legacy roots)."""
    from cryptography import x509

    certs = []
    # catch_warnings changes process-wide state: two threads inside it at once (several TLS checks loading the
    # anchors for the first time) could let the warnings through, hence the lock.
    with _PARSE_LOCK, warnings.catch_warnings():
        # System bundles carry a few legacy roots (e.g. a zero serial) cryptography only warns about.
        warnings.simplefilter("ignore")
        for block in _PEM.findall(data):
            try:
                certs.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return certs


def read_bundle(path: str | Path) -> bytes:
    """A --ca-bundle file's bytes, once it is known to hold at least one PEM certificate block whose contents
    are DER (a SEQUENCE); raises ValueError with a one-line reason. Checked without cryptography, which
    `Tls` then loads and parses the bundle with off the start-up path."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    for block in _PEM.findall(data):
        body = b"".join(block.splitlines()[1:-1])
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            continue
        if der[:1] == b"\x30":
            return data
    raise ValueError(f"{path} holds no PEM certificate")


def system_bundle_path() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def system_anchors() -> tuple[x509.Certificate, ...]:
    path = system_bundle_path()
    if path is None:
        return ()
    try:
        return tuple(load_pem_certificates(Path(path).read_bytes()))
    except OSError:
        return ()


class Tls:
    """The TLS client every rule shares: handshakes cached per (address, port, SNI), and the trust anchors.

    Attributes:
        timeout: bound on the TCP connect and on each handshake read.
        extra_anchors: certificates trusted in addition to the system's.
        extra_pem: a --ca-bundle file's bytes, trusted in addition too; parsed on first use.
        system_store: include the system bundle (tests switch it off to be independent of the machine).
    """

    def __init__(self, *, timeout: float = 5.0, extra_anchors: Sequence[x509.Certificate] = (),
                 extra_pem: bytes = b"", extra_source: str = "", system_store: bool = True,
                 cache_size: int = 1024) -> None:
        self.timeout = timeout
        self._extra_given = tuple(extra_anchors)
        self._extra_pem = extra_pem
        self._extra: tuple[x509.Certificate, ...] | None = None if extra_pem else self._extra_given
        self._extra_lock = threading.Lock()
        self.extra_source = extra_source
        self.system_store = system_store
        self._cache: SingleFlightCache[tuple[str, int, str], Handshake] = SingleFlightCache(cache_size)

    @property
    def extra_anchors(self) -> tuple[x509.Certificate, ...]:
        if self._extra is None:
            with self._extra_lock:
                if self._extra is None:
                    self._extra = self._extra_given + tuple(load_pem_certificates(self._extra_pem))
        return self._extra

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return (system_anchors() if self.system_store else ()) + self.extra_anchors

    @property
    def trust_store(self) -> str:
        """Which anchors are used, for the facts: 'system (/etc/ssl/…) + ca.pem'."""
        parts = []
        if self.system_store:
            parts.append(f"system ({system_bundle_path() or 'none found'})")
        if self._extra_given or self._extra_pem:
            parts.append(self.extra_source or f"{len(self.extra_anchors)} extra anchor(s)")
        return " + ".join(parts) or "none"

    def handshake(self, address: str, port: int, sni: str) -> Handshake:
        return self._cache.get((address, port, sni), lambda: handshake(address, port, sni, self.timeout))

    def clear(self) -> None:
        """Forget cached handshakes (a renewed certificate must be seen by `serve` and `--wait`)."""
        self._cache.clear()


# -- certificate checks (pure) -----------------------------------------------------------------------------


def name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def load_der_chain(chain: Sequence[bytes]) -> list[x509.Certificate]:
    """The served certificates, parsed; raises ValueError for one cryptography cannot parse."""
    from cryptography import x509

    return [x509.load_der_x509_certificate(der) for der in chain]


def organization(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    return name_attr(name, NameOID.ORGANIZATION_NAME)


def common_name(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    return name_attr(name, NameOID.COMMON_NAME)


def dns_sans(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [n.lower().rstrip(".") for n in ext.value.get_values_for_type(x509.DNSName)]


def covers(pattern: str, name: str) -> bool:
    """RFC 9525 §6.3: exact match, or a wildcard that is the whole left-most label and stands for one label.

    `*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`; partial wildcards
    (`w*.example.com`) and wildcards over a single remaining label (`*.com`) cover nothing.
    """
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if "*" not in pattern:
        return pattern == name
    if not pattern.startswith("*.") or "*" in pattern[1:]:
        return False
    rest = pattern[2:]
    if "." not in rest:
        return False
    first, _, tail = name.partition(".")
    return bool(first) and tail == rest


def key_type(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def _key_id(cert: x509.Certificate, cls: type[x509.AuthorityKeyIdentifier] | type[x509.SubjectKeyIdentifier]
            ) -> bytes | None:
    from cryptography import x509

    try:
        value: x509.ExtensionType = cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier
    return value.digest if isinstance(value, x509.SubjectKeyIdentifier) else None


def self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Name chaining, tightened by AKI/SKI when both certificates carry them."""
    from cryptography import x509

    if child.issuer != parent.subject:
        return False
    aki = _key_id(child, x509.AuthorityKeyIdentifier)
    ski = _key_id(parent, x509.SubjectKeyIdentifier)
    return aki is None or ski is None or aki == ski


def served_path(chain: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """From the leaf upwards through the served certificates (in any order), as far as they link."""
    path = [chain[0]]
    rest = list(chain[1:])
    while not self_issued(path[-1]):
        parent = next((c for c in rest if issued_by(path[-1], c)), None)
        if parent is None:
            break
        path.append(parent)
        rest.remove(parent)
    return path


@dataclass(frozen=True)
class TrustResult:
    trusted: bool
    error: str = ""
    path: tuple[str, ...] = field(default=())


def verify(chain: Sequence[x509.Certificate], name: str, anchors: Sequence[x509.Certificate],
           now: datetime) -> TrustResult:
    """Path validation by cryptography's WebPKI verifier (hostname and time included)."""
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    if not anchors:
        return TrustResult(False, "no trust anchors (no system bundle found and no --ca-bundle)")
    try:
        verifier = (PolicyBuilder().store(Store(list(anchors))).time(now)
                    .build_server_verifier(x509.DNSName(name)))
        built = verifier.verify(chain[0], list(chain[1:]))
    except VerificationError as exc:
        return TrustResult(False, str(exc))
    except ValueError as exc:  # e.g. a name cryptography refuses as a DNSName
        return TrustResult(False, str(exc))
    return TrustResult(True, "", tuple(c.subject.rfc4514_string() for c in built))
