"""`kdiag domain NAME --wait`: diagnose again and again until nothing fails, or a deadline passes.

Done means no check fails and none errors: `warn` and `skip` count as done (a warning is "works now, but
risky"; waiting would never end for a domain whose DNS is deliberately flattened, say).

Between tries kdiag respects the DNS TTLs rather than hammering the resolver: each rule runs inside
`kdiag.probes.dns.recording()`, so the answers that decided each check are known, and the next try comes when
the first of those answers behind a failing (or erroring) check may have changed — its smallest TTL (for a
negative answer, the SOA's negative-caching TTL) — clamped to [`FLOOR`, `CEILING`]. A failing check no DNS
answer decided (Konnect still setting the domain up, say) is tried again after `FLOOR`. `--wait-interval`
replaces all of that with a fixed interval. The DNS, TLS and HTTP caches are cleared before every try.

With `readd=True` (and a Konnect client), once the DNS and CAA checks pass while konnect-domain-status still
reports Konnect's failed one-time validation, the domain is removed and added again (the same operation as
`kdiag konnect domain readd`), and the wait goes on until Konnect reports it ready.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kdiag.errors import KdiagError, UsageError
from kdiag.model import CheckResult, Status
from kdiag.probes.dns import Answer, recording

if TYPE_CHECKING:
    from kdiag.declare import Rule
    from kdiag.diagnose import Diagnoser, Diagnosis

FLOOR = 5.0  # seconds: never ask again sooner (TTL 0 answers, Konnect state polling)
CEILING = 300.0  # seconds: never wait longer between tries, whatever the TTL
DEFAULT_TIMEOUT = "30m"
MAX_READDS = 3  # a domain Konnect keeps rejecting is not re-added forever
DNS_RULES = ("dns-cname-target", "caa-permits-letsencrypt")  # must pass before a re-add is worth it
KONNECT_RULE = "konnect-domain-status"
READD_CODES = ("stale-validation", "error", "unverified")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `1.5m`, `30m`, `2h`, `500ms` → seconds; raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 30m, 2h)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def is_done(checks: Sequence[CheckResult], *, need_ready: bool = False) -> bool:
    """Nothing failed and nothing errored (warn and skip count as done); with `need_ready` (--readd),
    konnect-domain-status must also pass, not just be pending."""
    if any(c.status in (Status.FAIL, Status.ERROR) for c in checks):
        return False
    return not need_ready or all(c.status is Status.PASS for c in checks if c.id == KONNECT_RULE)


def failing(checks: Sequence[CheckResult]) -> list[CheckResult]:
    return [c for c in checks if c.status in (Status.FAIL, Status.ERROR)]


def next_delay(checks: Sequence[CheckResult], answers: Mapping[str, Sequence[Answer]], *,
               floor: float = FLOOR, ceiling: float = CEILING) -> tuple[float, str]:
    """(Seconds until the next try, why): the smallest TTL among the answers behind a failing check, clamped.

    A failing check that no TTL-carrying answer decided (and konnect-domain-status, whose verdict follows
    Konnect's state, not a TTL) asks for the floor.
    """
    best: tuple[float, str] | None = None
    for check in failing(checks):
        ttls = [a for a in answers.get(check.id, ()) if a.ttl is not None] if check.id != KONNECT_RULE else []
        if ttls:
            answer = min(ttls, key=lambda a: a.ttl or 0)
            candidate = (float(answer.ttl or 0), f"smallest TTL {answer.ttl} s: {answer.rdtype} {answer.name}, "
                                                 f"behind {check.id}")
        else:
            candidate = (floor, f"{check.id} is not decided by a DNS TTL")
        if best is None or candidate[0] < best[0]:
            best = candidate
    if best is None:
        return floor, "kdiag's resolver did not answer"
    return min(max(best[0], floor), ceiling), best[1]


@dataclass
class WaitResult:
    diagnosis: Diagnosis
    tries: int
    done: bool
    timed_out: bool = False
    interrupted: bool = False
    readds: int = 0


class Watcher:
    """Runs the diagnosis of one name until done, a deadline, or Ctrl-C; reports progress through `say`."""

    def __init__(self, diagnoser: Diagnoser, *, timeout: float, interval: float | None = None,
                 readd: bool = False, say: Callable[[str], None] = lambda line: None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 floor: float = FLOOR, ceiling: float = CEILING) -> None:
        if readd and diagnoser.konnect is None:
            raise UsageError("--readd needs KONNECT_TOKEN: re-adding the domain is a Konnect API call")
        self.diagnoser = diagnoser
        self.timeout = timeout
        self.interval = interval
        self.readd = readd
        self.say = say
        self.sleep = sleep
        self.clock = clock
        self.floor = floor
        self.ceiling = ceiling
        self._answers: dict[str, list[Answer]] = {}
        # Wrap each rule so the answers it used are recorded; this Diagnoser is ours alone.
        diagnoser.rules = [self._recorded(r) for r in diagnoser.rules]

    def _recorded(self, rule: Rule) -> Rule:
        check = rule.check
        sink = self._answers

        def recorded_check(ctx: Any) -> Any:
            with recording() as seen:
                try:
                    return check(ctx)
                finally:
                    sink[rule.id] = seen

        return replace(rule, check=recorded_check)

    def run(self, name: str, target: str | None) -> WaitResult:
        deadline = self.clock() + self.timeout
        last: Diagnosis | None = None
        tries = readds = 0
        try:
            while True:
                self.diagnoser.clear_caches()  # DNS answers, handshakes, HTTP: all may have changed
                self._answers.clear()
                last = self.diagnoser.diagnose(name, target)
                tries += 1
                checks = last.report.checks
                if is_done(checks, need_ready=self.readd) and not last.resolver_silent:
                    if tries > 1:
                        self.say(f"try {tries}: nothing fails any more")
                    return WaitResult(last, tries, True, readds=readds)
                if self.readd and readds < MAX_READDS and self._wants_readd(checks):
                    readds += 1
                    self.say(f"try {tries}: DNS and CAA pass but Konnect still reports its old validation; "
                             f"removing and re-adding {last.report.domain} in Konnect")
                    delay = self.interval if self.interval is not None else self.floor
                    why = "Konnect validates the re-added domain"
                    try:
                        self._readd(last.report.domain)
                    except KdiagError as exc:  # the API said no: keep waiting, with the reason on stderr
                        self.say(f"try {tries}: re-adding failed: {exc}")
                        why = "re-adding failed"
                elif self.interval is not None:
                    delay, why = self.interval, "--wait-interval"
                else:
                    delay, why = next_delay(checks, self._answers, floor=self.floor, ceiling=self.ceiling)
                remaining = deadline - self.clock()
                still = ", ".join(f"{c.id}[{c.finding.code}]" for c in failing(checks)) or \
                    ", ".join(f"{c.id}[{c.finding.code}]" for c in checks if c.id == KONNECT_RULE
                              and c.status is not Status.PASS) or "kdiag's resolver did not answer"
                state = "still failing" if failing(checks) else "waiting for"
                if remaining <= 0:
                    self.say(f"try {tries}: {state}: {still}; --wait-timeout reached, giving up")
                    return WaitResult(last, tries, False, timed_out=True, readds=readds)
                delay = min(delay, remaining)
                at = (datetime.now(UTC) + timedelta(seconds=delay)).astimezone().strftime("%H:%M:%S")
                self.say(f"try {tries}: {state}: {still}; next try in {delay:.0f} s at {at} ({why})"
                         if delay >= 1 else
                         f"try {tries}: {state}: {still}; next try in {delay:.1f} s ({why})")
                self.sleep(delay)
        except KeyboardInterrupt:
            if last is None:
                raise
            self.say(f"interrupted after {tries} tr{'y' if tries == 1 else 'ies'}; showing the last diagnosis")
            return WaitResult(last, tries, False, interrupted=True, readds=readds)

    def _wants_readd(self, checks: Sequence[CheckResult]) -> bool:
        by_id = {c.id: c for c in checks}
        konnect = by_id.get(KONNECT_RULE)
        if konnect is None or konnect.status is not Status.FAIL or konnect.finding.code not in READD_CODES:
            return False
        # The DNS checks that ran must pass (a warning is fine); a rule left out with --skip is not asked.
        return all(by_id[r].status in (Status.PASS, Status.WARN, Status.SKIP) for r in DNS_RULES if r in by_id)

    def _readd(self, name: str) -> None:
        from kdiag.konnect.cli import readd_domain

        assert self.diagnoser.konnect is not None
        poll = min(2.0, self.interval if self.interval is not None else self.floor)
        readd_domain(self.diagnoser.konnect, name, region=self.diagnoser.settings.region,
                     poll_interval=poll, wait_timeout=120.0, sleep=self.sleep)
