"""A real recursive DNS test bed on loopback: NSD under a fake root, Unbound in front.

Layout (every server on port 53 of its own loopback address, because glue records cannot carry a port):

    127.53.0.1   NSD "root": the root zone, every TLD the fixtures need, test. and bed.test.
    127.53.0.2   NSD "leaf" (ns1.bed.test.): every fixtures/zones/*.zone
    127.53.0.4   the same NSD again (ns2.bed.test.)
    127.53.0.3   NSD "lame" (lame.bed.test.): serves an unrelated zone, so it REFUSES ours
    127.53.0.9   nothing (dead.bed.test.)
    127.53.0.53  Unbound, whose root hints name only 127.53.0.1

The root, TLD and bed.test. zones are generated from the leaf zones' apex NS sets, so fixture authors only
write leaf zones. Needs root (or a low ip_unprivileged_port_start) and nsd/unbound: see unavailable_reason()
and tests/install-bed.sh.

Manual use: `python -m tests.dnsbed [--zones DIR]`, then e.g. `kdiag domain my.example.com --nameserver 127.53.0.53`.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataset
import dns.zone

ROOT_ADDR = "127.53.0.1"
NS1_ADDR = "127.53.0.2"
LAME_ADDR = "127.53.0.3"
NS2_ADDR = "127.53.0.4"
DEAD_ADDR = "127.53.0.9"
RESOLVER_ADDR = "127.53.0.53"
PORT = 53

BED = dns.name.from_text("bed.test.")
ROOT_NS = dns.name.from_text("root.bed.test.")
# The name servers a fixture zone may list at its apex, and where each one is.
FIXTURE_NS = {
    dns.name.from_text("ns1.bed.test."): NS1_ADDR,
    dns.name.from_text("ns2.bed.test."): NS2_ADDR,
    dns.name.from_text("lame.bed.test."): LAME_ADDR,
    dns.name.from_text("dead.bed.test."): DEAD_ADDR,
}
ADDRESSES = {ROOT_NS: ROOT_ADDR, **FIXTURE_NS}
# A zone whose apex NS are all among these is served by nobody, as in real life; resolvers give SERVFAIL.
BROKEN_NS = frozenset(dns.name.from_text(n) for n in ("lame.bed.test.", "dead.bed.test."))
LAME_ZONE = dns.name.from_text("unrelated.invalid.")
DEFAULT_ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
# Debian puts the daemons in /usr/sbin, which a non-root PATH often lacks.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
START_TIMEOUT = 10.0
LOCK_FILE = Path(tempfile.gettempdir()) / "kdiag-dnsbed.lock"


class BedError(RuntimeError):
    """The bed could not be built or started; the message says why (and shows the daemons' logs)."""


@dataclass
class _Daemon:
    name: str
    argv: list[str]
    logs: list[Path]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {log} ---\n" + "\n".join(tail))
        return "\n".join(out) or f"(no log from {self.name})"


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process is killed outright, the kernel TERMs the daemon,
    # so no stale bed keeps port 53 busy for the next run.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _zone_file(origin: dns.name.Name) -> str:
    return "root.zone" if origin == dns.name.root else origin.to_text(omit_final_dot=True) + ".zone"


def read_zones(zones_dir: Path) -> dict[dns.name.Name, str]:
    """The text of every <origin>.zone file in zones_dir, keyed by origin (taken from the file name)."""
    return {dns.name.from_text(p.name.removesuffix(".zone")): p.read_text() for p in sorted(zones_dir.glob("*.zone"))}


def _parse_leaf(origin: dns.name.Name, text: str) -> dns.zone.Zone:
    """Parse a fixture zone and check it against the conventions (the bed's NS names, no reserved origin)."""
    where = _zone_file(origin)
    try:
        zone = dns.zone.from_text(text, origin=origin, relativize=False)
    except dns.exception.DNSException as exc:
        raise BedError(f"{where}: {exc.__class__.__name__}: {exc}") from None
    if origin.is_subdomain(BED) or origin in (dns.name.root, BED.parent()):
        raise BedError(f"{where}: {origin} is reserved for the bed's own zones")
    unknown = sorted(str(rd.target) for rd in zone.find_rdataset(origin, "NS") if rd.target not in FIXTURE_NS)
    if unknown:
        allowed = ", ".join(str(n) for n in FIXTURE_NS)
        raise BedError(f"{where}: apex NS {', '.join(unknown)} unknown; use only {allowed}")
    return zone


def _generated_zone(origin: dns.name.Name, records: set[str]) -> str:
    head = [
        f"$ORIGIN {origin}",
        "$TTL 3600",
        f"@ IN SOA {ROOT_NS} hostmaster.{BED} 1 3600 600 86400 60",
        f"@ IN NS {ROOT_NS}",
    ]
    return "\n".join(head + sorted(records)) + "\n"


def build_zones(leaves: dict[dns.name.Name, str]) -> tuple[dict[dns.name.Name, str], dict[dns.name.Name, str]]:
    """Return (zones for the root NSD, zones for the leaf NSD) as zone-file texts, given the fixture zones' texts.

    The root NSD gets `.`, each TLD above a leaf (unless it is a leaf itself), `test.` and `bed.test.`. Every zone
    is delegated from its closest enclosing zone with its own apex NS set; when that parent is another leaf zone,
    the NS records are appended to the parent's copy, unless its author already wrote some there.
    """
    parsed = {origin: _parse_leaf(origin, text) for origin, text in leaves.items()}
    tlds = {dns.name.Name(origin.labels[-2:]) for origin in leaves}
    generated: dict[dns.name.Name, set[str]] = {o: set() for o in (tlds - leaves.keys()) | {
        dns.name.root, BED.parent(), BED}}
    generated[BED] |= {f"{name} IN A {addr}" for name, addr in ADDRESSES.items()}
    texts = dict(leaves)
    every_zone = generated.keys() | leaves.keys()

    for origin in every_zone - {dns.name.root}:
        parent = max((z for z in every_zone if origin.is_subdomain(z) and z != origin), key=len)
        if origin in generated:
            ns, ttl = [ROOT_NS], 3600
        else:
            rdataset = parsed[origin].find_rdataset(origin, "NS")
            ns, ttl = [rd.target for rd in rdataset], rdataset.ttl
        lines = [f"{origin} {ttl} IN NS {target}" for target in ns]
        if parent in generated:
            # Glue only where the parent may hold it: root.bed.test. under . and test.
            glue = [f"{target} IN A {ADDRESSES[target]}" for target in ns if target.is_subdomain(parent)]
            generated[parent] |= set(lines + glue)
        elif parsed[parent].get_rdataset(origin, "NS") is None:
            texts[parent] = texts[parent].rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    # Not serving BROKEN_NS-only zones matters for a zone nested in another leaf zone: the leaf NSD would
    # otherwise answer for it from its own copy, and it would never look lame or dead.
    served = {o: t for o, t in texts.items()
              if not all(rd.target in BROKEN_NS for rd in parsed[o].find_rdataset(o, "NS"))}
    return {o: _generated_zone(o, records) for o, records in generated.items()}, served


def _nsd_conf(run: Path, addresses: list[str], zones: list[dns.name.Name]) -> str:
    listen = "".join(f"  ip-address: {a}\n" for a in addresses)
    zone_blocks = "".join(f'zone:\n  name: "{z}"\n  zonefile: "{_zone_file(z)}"\n' for z in zones)
    # No privilege drop and every state file in our own directory, so instances never collide with a stock
    # nsd; rate limiting off, or a busy test run gets slipped (TC=1) answers from NSD.
    return f"""server:
{listen}  port: {PORT}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{run}"
  database: ""
  zonelistfile: "{run}/zone.list"
  xfrdfile: "{run}/xfrd.state"
  xfrdir: "{run}"
  pidfile: "{run}/nsd.pid"
  logfile: "{run}/nsd.log"
  server-count: 1
  verbosity: 1
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
{zone_blocks}"""


def _unbound_conf(run: Path, cache_max_ttl: int | None) -> str:
    cache = f"  cache-max-ttl: {cache_max_ttl}\n  cache-max-negative-ttl: {cache_max_ttl}\n" \
        if cache_max_ttl is not None else ""
    # discard-timeout/infra-cache-max-rtt: Debian's CVE-2024-33655 backport drops replies slower than 1.9 s,
    # so a dead name server would give clients no answer at all; with these it is SERVFAIL in about 2 s.
    # "validator iterator" without trust anchors treats every zone as insecure (the fixtures are unsigned).
    return f"""server:
  interface: {RESOLVER_ADDR}
  port: {PORT}
  outgoing-interface: {RESOLVER_ADDR}
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  do-not-query-localhost: no
  local-zone: "test." nodefault
  root-hints: "{run}/root.hints"
  module-config: "validator iterator"
  discard-timeout: 10000
  infra-cache-max-rtt: 1000
{cache}  num-threads: 1
  username: ""
  chroot: ""
  directory: "{run}"
  pidfile: "{run}/unbound.pid"
  logfile: "{run}/unbound.log"
  use-syslog: no
  log-time-ascii: yes
  verbosity: 1
remote-control:
  control-enable: no
"""


def _answers(addr: str, qname: dns.name.Name | str, rdtype: str, want_noerror: bool) -> bool:
    """Whether the server at addr:53 answers the query (with NOERROR, if want_noerror)."""
    try:
        reply = dns.query.udp(dns.message.make_query(qname, rdtype), addr, port=PORT, timeout=0.2)
    except (OSError, dns.exception.DNSException):
        return False
    return reply.rcode() == dns.rcode.NOERROR or not want_noerror


class DnsBed:
    """NSD + Unbound on 127.53.0.x:53, serving the leaf zones in zones_dir through a fake root.

    `override_zone()` changes a zone (or adds/removes one) for the duration of a `with` block without touching
    zones_dir; `reload()` re-reads everything and restarts the daemons, which also empties Unbound's cache.
    """

    def __init__(self, zones_dir: Path, workdir: Path, *, cache_max_ttl: int | None = None,
                 lock_timeout: float = 180.0) -> None:
        self.zones_dir = Path(zones_dir)
        self.workdir = Path(workdir)
        self.cache_max_ttl = cache_max_ttl
        self.lock_timeout = lock_timeout
        self._overrides: dict[dns.name.Name, str | None] = {}
        self._daemons: list[_Daemon] = []
        self._lock: TextIO | None = None

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why the bed cannot run on this machine, or None if it can."""
        if not sys.platform.startswith("linux"):
            return f"the DNS bed needs Linux (this is {sys.platform})"
        missing = [d for d in ("nsd", "unbound") if shutil.which(d, path=SBIN_PATH) is None]
        if missing:
            return f"{' and '.join(missing)} not installed: run `sudo tests/install-bed.sh`"
        try:
            unprivileged = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
        except (OSError, ValueError):
            unprivileged = 1024
        if os.geteuid() != 0 and unprivileged > PORT:
            return "the DNS bed needs root to listen on port 53 of 127.53.0.x"
        return None

    @property
    def resolver_address(self) -> tuple[str, int]:
        return RESOLVER_ADDR, PORT

    def start(self) -> DnsBed:
        reason = self.unavailable_reason()
        if reason:
            raise BedError(reason)
        if self._lock is not None:
            raise BedError("the bed is already running")
        if not self.zones_dir.is_dir():
            raise BedError(f"zones directory {self.zones_dir} does not exist")
        self._lock = self._acquire_lock()
        try:
            self._start_daemons()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stop_daemons()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def reload(self) -> None:
        """Re-read the zones (zones_dir plus overrides) and restart every daemon; Unbound starts with no cache."""
        if self._lock is None:
            raise BedError("the bed is not running")
        # The machine-wide lock stays held, so no other bed can grab the addresses in between.
        self._stop_daemons()
        self._start_daemons()

    @contextmanager
    def override_zone(self, origin: str, text: str | None) -> Iterator[None]:
        """Serve `text` as zone `origin` (None: drop the zone) inside the block; the previous state after it."""
        name = dns.name.from_text(origin)
        saved = self._overrides.get(name, ...)
        self._overrides[name] = text
        try:
            if self._lock is not None:
                self.reload()
            yield
        finally:
            if saved is ...:
                del self._overrides[name]
            else:
                self._overrides[name] = saved
            if self._lock is not None:
                self.reload()

    def __enter__(self) -> DnsBed:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------------------------

    def _leaf_texts(self) -> dict[dns.name.Name, str]:
        texts: dict[dns.name.Name, str | None] = {**read_zones(self.zones_dir), **self._overrides}
        return {origin: text for origin, text in texts.items() if text is not None}

    def _write(self, run: Path, zones: dict[dns.name.Name, str], addresses: list[str]) -> Path:
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        for origin, text in zones.items():
            (run / _zone_file(origin)).write_text(text)
        conf = run / "nsd.conf"
        conf.write_text(_nsd_conf(run, addresses, sorted(zones)))
        return conf

    def _acquire_lock(self) -> TextIO:
        # Port 53 on 127.53.0.x is machine-wide: two test sessions at once would fight over it, so the second one
        # waits for the first to finish (flock is released by the kernel even if the holder is killed).
        import fcntl  # here, so that the fake resolver can import this module where fcntl does not exist

        lock = LOCK_FILE.open("a+")
        deadline, told = time.monotonic() + self.lock_timeout, False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "unknown"
                if time.monotonic() > deadline:
                    lock.close()
                    raise BedError(f"another DNS bed (pid {holder}) is running; waited {self.lock_timeout:.0f} s "
                                   f"for {LOCK_FILE}") from None
                if not told:
                    print(f"dnsbed: waiting up to {self.lock_timeout:.0f} s for the DNS bed of pid {holder}",
                          file=sys.stderr, flush=True)
                    told = True
                time.sleep(0.2)
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return lock

    def _stop_daemons(self) -> None:
        # Unbound first, so it never sees its upstreams vanish mid-query; then the NSDs. Each by its own pid.
        for daemon in reversed(self._daemons):
            if daemon.proc and daemon.proc.poll() is None:
                daemon.proc.terminate()
                try:
                    daemon.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    daemon.proc.kill()
                    daemon.proc.wait()
        self._daemons = []

    def _start_daemons(self) -> None:
        try:
            self._launch_all()
        except BaseException:
            self._stop_daemons()
            raise

    def _launch_all(self) -> None:
        generated, leaves = build_zones(self._leaf_texts())
        lame = {LAME_ZONE: _generated_zone(LAME_ZONE, set())}
        nsd = shutil.which("nsd", path=SBIN_PATH) or "nsd"
        unbound = shutil.which("unbound", path=SBIN_PATH) or "unbound"
        self.workdir.mkdir(parents=True, exist_ok=True)

        nsds = []
        for name, zones, addrs in (("root", generated, [ROOT_ADDR]), ("leaf", leaves, [NS1_ADDR, NS2_ADDR]),
                                   ("lame", lame, [LAME_ADDR])):
            run = self.workdir / f"nsd-{name}"
            conf = self._write(run, zones, addrs)
            nsds.append(_Daemon(f"nsd-{name}", [nsd, "-d", "-c", str(conf)], [run / "stderr.log", run / "nsd.log"]))
        # Every authoritative must answer before Unbound starts: otherwise it may mark the root as down.
        checks = [(ROOT_ADDR, ".", "SOA", True), (NS1_ADDR, ".", "SOA", False), (NS2_ADDR, ".", "SOA", False),
                  (LAME_ADDR, str(LAME_ZONE), "SOA", True)]
        self._launch(nsds, checks)
        not_loaded = [str(o) for o in leaves for a in (NS1_ADDR, NS2_ADDR) if not _answers(a, o, "SOA", True)]
        if not_loaded:
            raise BedError(f"NSD did not load zone(s) {', '.join(sorted(set(not_loaded)))}\n{nsds[1].log_tail()}")

        run = self.workdir / "unbound"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        (run / "root.hints").write_text(f". 3600000 IN NS {ROOT_NS}\n{ROOT_NS} 3600000 IN A {ROOT_ADDR}\n")
        (run / "unbound.conf").write_text(_unbound_conf(run, self.cache_max_ttl))
        resolver = _Daemon("unbound", [unbound, "-d", "-c", str(run / "unbound.conf")],
                           [run / "stderr.log", run / "unbound.log"])
        # Through Unbound, ns1.bed.test. needs the whole referral path: . -> test. -> bed.test.
        self._launch([resolver], [(RESOLVER_ADDR, "ns1.bed.test.", "A", True)])

    def _launch(self, daemons: list[_Daemon], checks: list[tuple[str, str, str, bool]]) -> None:
        """Start the daemons, then wait until each (address, qname, rdtype, want_noerror) check is answered."""
        for daemon in daemons:
            with daemon.logs[0].open("wb") as out:
                daemon.proc = subprocess.Popen(daemon.argv, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True,
                                               preexec_fn=_die_with_parent)
            self._daemons.append(daemon)
        deadline = time.monotonic() + START_TIMEOUT
        pending = list(checks)
        while pending:
            for daemon in daemons:
                assert daemon.proc is not None
                if daemon.proc.poll() is not None:
                    tail = daemon.log_tail()
                    hint = "\n(something else uses port 53 there: a stock nsd/unbound listening on 0.0.0.0?)" \
                        if "already in use" in tail else ""
                    raise BedError(f"{daemon.name} exited with code {daemon.proc.returncode}\n{tail}{hint}")
            pending = [check for check in pending if not _answers(*check)]
            if pending and time.monotonic() > deadline:
                logs = "\n".join(d.log_tail() for d in daemons)
                raise BedError(f"no answer from {', '.join(c[0] for c in pending)} after {START_TIMEOUT:.0f} s\n{logs}")
            if pending:
                time.sleep(0.02)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM ends the bed as cleanly as Ctrl-C does.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.dnsbed", description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=Path, default=DEFAULT_ZONES, help="leaf zone files (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, help="where configs and logs go (default: a temporary directory)")
    parser.add_argument("--cache-max-ttl", type=int, help="cap Unbound's cache TTLs (seconds)")
    args = parser.parse_args(argv)
    reason = DnsBed.unavailable_reason()
    if reason:
        print(f"dnsbed: {reason}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell's background job starts with it ignored
        signal.signal(signum, _interrupt)
    with tempfile.TemporaryDirectory(prefix="dnsbed-") as tmp:
        bed = DnsBed(args.zones, args.workdir or Path(tmp), cache_max_ttl=args.cache_max_ttl)
        try:
            with bed:
                host, port = bed.resolver_address
                print(f"resolver {host}:{port} (logs in {bed.workdir}); e.g.\n"
                      f"  kdiag domain my.example.com --nameserver {host}\n"
                      f"  dig @{host} my.example.com\nCtrl-C stops the bed.", flush=True)
                threading.Event().wait()
        except BedError as exc:
            print(f"dnsbed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("dnsbed: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
