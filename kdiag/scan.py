"""`kdiag scan`: diagnose a list of domains with bounded concurrency and one shared resolver cache.

Memory stays flat however long the list: the input is read one line at a time (a line is at most
`MAX_LINE` characters), at most `4 × concurrency` diagnoses are in flight, the DNS cache is an LRU of bounded
size, and once a domain's report has been written (JSON Lines) or reduced to its small table `Row`, the report
is dropped.

Input: one name per line, optionally `,target`; `#` starts a comment; blank lines are ignored. A malformed line
is reported with its number and counts as an error; the rest still runs.
"""

from __future__ import annotations

import itertools
import json
import queue
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from kdiag.model import Status, exit_code
from kdiag.names import InvalidName, normalize_domain, normalize_target

if TYPE_CHECKING:
    from kdiag.diagnose import Diagnoser, Diagnosis

MAX_LINE = 4096  # a longer line is malformed; reading stops there, so one huge line cannot fill memory
DEFAULT_CONCURRENCY = 32
DNS_CACHE = 4096  # answers kept (LRU); a scan's names share their parents' CAA and the gateway's addresses
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Item:
    """A well-formed input line."""

    line: int
    input: str
    name: str
    target: str | None


@dataclass(frozen=True)
class BadLine:
    """A malformed input line and why."""

    line: int
    input: str
    error: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "input": self.input, "error": self.error}


@dataclass(frozen=True)
class Row:
    """What table mode keeps of one diagnosis: a few strings, not the report."""

    line: int
    domain: str
    status: Status
    problems: tuple[str, ...]  # `id[code]` of every check that failed, errored or warned
    resolver_silent: bool = False


@dataclass
class Tally:
    """Counts over the whole scan; `worst` decides the exit code."""

    domains: int = 0
    malformed: int = 0
    by_status: dict[Status, int] = field(default_factory=lambda: {s: 0 for s in Status})
    worst: Status = Status.PASS

    def add(self, status: Status) -> None:
        self.by_status[status] += 1
        if status.severity > self.worst.severity:
            self.worst = status

    @property
    def exit_code(self) -> int:
        return exit_code([self.worst])


def read_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    """(line number, text without the newline), one line at a time; a line over MAX_LINE is cut to MAX_LINE
    characters and the rest of it skipped (parse() then reports it)."""
    number = 0
    while True:
        text = stream.readline(MAX_LINE + 1)
        if not text:
            return
        number += 1
        if len(text) > MAX_LINE and not text.endswith("\n"):
            while True:  # skip the rest of this line without keeping it
                rest = stream.readline(MAX_LINE)
                if not rest or rest.endswith("\n"):
                    break
        yield number, text.rstrip("\r\n")


def parse(lines: Iterable[tuple[int, str]], default_target: str | None = None) -> Iterator[Item | BadLine]:
    """Turn input lines into Items (normalised name and target) or BadLines; skips blanks and comments."""
    for number, raw in lines:
        if len(raw) > MAX_LINE:
            yield BadLine(number, raw[:80] + "…", f"the line is longer than {MAX_LINE} characters")
            continue
        text = raw.split("#", 1)[0].strip()  # '#' never occurs in a domain name
        if not text:
            continue
        fields = [f.strip() for f in text.split(",")]
        if len(fields) > 2:
            yield BadLine(number, raw, f"too many fields ({len(fields)}); expected NAME or NAME,TARGET")
            continue
        try:
            name = normalize_domain(fields[0]).name
        except InvalidName as exc:
            yield BadLine(number, raw, str(exc))
            continue
        target = default_target
        if len(fields) == 2:
            if not fields[1]:
                yield BadLine(number, raw, "the target after the comma is empty")
                continue
            try:
                target = normalize_target(fields[1])
            except InvalidName as exc:
                # (normalize_target words its errors for the --target option)
                yield BadLine(number, raw, "target " + str(exc).removeprefix("--target "))
                continue
        yield Item(number, raw, name, target)


def row_of(item: Item, diagnosis: Diagnosis) -> Row:
    report = diagnosis.report
    problems = tuple(f"{c.id}[{c.finding.code}]" for c in report.checks
                     if c.status in (Status.FAIL, Status.ERROR, Status.WARN))
    status = Status.ERROR if diagnosis.resolver_silent else report.status
    return Row(item.line, report.domain, status, problems, diagnosis.resolver_silent)


def jsonl_line(doc: dict[str, object]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


class Progress:
    """A one-line progress bar on a terminal's stderr, redrawn at most 10 times a second."""

    def __init__(self, out: IO[str], total: int | None) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, done: int, tally: Tally, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        rate = done / max(now - self.started, 1e-6)
        bad = tally.by_status[Status.FAIL] + tally.by_status[Status.ERROR] + tally.malformed
        if self.total:
            width = 24
            filled = min(width, int(width * done / self.total))
            head = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
        else:
            head = f"{done} done"
        self.out.write(f"\r\x1b[2K{head}  {rate:.0f}/s  {bad} not ok")
        self.out.flush()

    def close(self) -> None:
        self.out.write("\r\x1b[2K")
        self.out.flush()


def count_lines(path: str) -> int | None:
    """The lines of a regular file that name a domain or are malformed (not blank, not only a comment): the
    progress bar's total. A second, streaming pass over the file; None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return sum(1 for _, text in read_lines(f) if text.split("#", 1)[0].strip())
    except OSError:
        return None


@dataclass
class Outcome:
    tally: Tally
    rows: list[Row]
    interrupted: bool = False
    seconds: float = 0.0


def run_scan(items: Iterable[Item | BadLine], diagnoser: Diagnoser, *, concurrency: int,
             on_row: Callable[[Item, Diagnosis], None] | None = None,
             on_bad: Callable[[BadLine], None] | None = None,
             on_progress: Callable[[int, Tally], None] | None = None,
             keep_rows: bool = True) -> Outcome:
    """Diagnose every Item on `concurrency` threads; callbacks run in the calling thread, in the order results
    arrive. Ctrl-C (KeyboardInterrupt) stops reading, cancels what has not started and returns what was done
    with `interrupted` set.

    The input is taken in batches of `2 × concurrency` names. Before a batch is handed to the threads, the
    questions its rules declare they ask first go out together (`Diagnoser.prefetch`: one socket, many queries
    in flight), so the diagnoses mostly find their answers cached instead of each waiting on its own round
    trips. While the threads work on one batch, this thread prefetches the next; at most two batches are in
    flight.
    """
    tally = Tally()
    rows: list[Row] = []
    started = time.monotonic()
    batch_size = 2 * concurrency
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kdiag-scan")
    finished: queue.SimpleQueue[Future[Diagnosis]] = queue.SimpleQueue()
    in_flight: dict[Future[Diagnosis], Item] = {}
    done_count = 0
    interrupted = False

    def collect(fut: Future[Diagnosis]) -> None:
        nonlocal done_count
        item = in_flight.pop(fut)
        diagnosis = fut.result()  # diagnose() turns every rule outcome into data; only bugs raise
        row = row_of(item, diagnosis)
        tally.domains += 1
        tally.add(row.status)
        if keep_rows:
            rows.append(row)
        if on_row is not None:
            on_row(item, diagnosis)
        done_count += 1
        if on_progress is not None:
            on_progress(done_count, tally)

    def drain(until: int) -> None:
        """Collect finished diagnoses: all that are done, then block until at most `until` are in flight."""
        while in_flight:
            try:
                fut = finished.get_nowait() if len(in_flight) <= until else finished.get()
            except queue.Empty:
                return
            collect(fut)

    try:
        entries = iter(items)
        while batch := list(itertools.islice(entries, batch_size)):
            good: list[Item] = []
            for entry in batch:
                if isinstance(entry, BadLine):
                    tally.malformed += 1
                    tally.add(Status.ERROR)
                    if on_bad is not None:
                        on_bad(entry)
                    done_count += 1
                else:
                    good.append(entry)
            diagnoser.prefetch(item.name for item in good)
            for item in good:
                fut = pool.submit(diagnoser.diagnose, item.name, item.target)
                in_flight[fut] = item
                fut.add_done_callback(finished.put)
            drain(until=batch_size)
        drain(until=0)
    except KeyboardInterrupt:
        interrupted = True
        for fut in in_flight:
            fut.cancel()
    finally:
        # Running diagnoses cannot be killed; each is bounded by --timeout. Do not wait for them here.
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    if on_progress is not None:
        on_progress(done_count, tally)
    rows.sort(key=lambda r: r.line)
    return Outcome(tally, rows, interrupted, time.monotonic() - started)


def render_table(outcome: Outcome) -> str:
    from tabulate import tabulate

    from kdiag.output import _printable

    lines = []
    if outcome.rows:
        table = [(r.line, r.domain, r.status.value.upper(),
                  "resolver did not answer" if r.resolver_silent else ", ".join(_printable(p) for p in r.problems))
                 for r in outcome.rows]
        lines.append(tabulate(table, headers=("LINE", "DOMAIN", "STATUS", "FAILING"), tablefmt="simple"))
        lines.append("")
    lines.append(summary(outcome))
    return "\n".join(lines)


def summary(outcome: Outcome) -> str:
    t = outcome.tally
    parts = [f"{n} {s.value}" for s, n in t.by_status.items() if n and s is not Status.ERROR]
    errors = t.by_status[Status.ERROR] - t.malformed
    if errors:
        parts.append(f"{errors} error")
    if t.malformed:
        parts.append(f"{t.malformed} malformed line{'s' if t.malformed != 1 else ''}")
    rate = t.domains / outcome.seconds if outcome.seconds > 0 else 0.0
    head = "INTERRUPTED: " if outcome.interrupted else ""
    code = EXIT_INTERRUPTED if outcome.interrupted else t.exit_code
    return (f"{head}{t.domains} domain{'s' if t.domains != 1 else ''}: {', '.join(parts) or 'nothing to do'} "
            f"in {outcome.seconds:.1f} s ({rate:.0f}/s) (exit {code})")


def worst_exit(outcome: Outcome) -> int:
    """The exit code: worst over all domains (fail 2 > error 3 > warn 1 > ok 0); 130 when interrupted."""
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return outcome.tally.exit_code


def stderr_isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
