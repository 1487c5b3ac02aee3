"""`kdiag scan`: JSON Lines as results arrive, malformed lines by number, the worst exit code, stdin, Ctrl-C,
and memory that stays flat however long the list.

Every DNS question goes to a loopback resolver named on the command line: the in-process fake resolver
(tests/fakedns.py), some of whose names are made to never answer, so that slow and fast domains can be told apart.
"""

from __future__ import annotations

import gc
import io
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.diagnose import Diagnoser, Settings
from kdiag.model import Status
from kdiag.scan import BadLine, Item, parse, read_lines, run_scan
from tests.fakedns import FakeDns
from tests.konnect_helpers import kdiag
from tests.support import kdiag_env as env
from tests.support import nameserver_arg as ns

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
GATEWAY = "9e454bcfec.kongcloud.dev"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"
SLOW = "slow.cname-cases.com"  # never answered by the `slow_dns` resolver: each lookup runs into --timeout


@pytest.fixture(scope="module")
def slow_dns() -> Iterator[FakeDns]:
    with FakeDns(ZONES, overrides={(f"{SLOW}.", "*"): "DROP"}) as fake:
        yield fake


INPUT = """\
# customer domains
ok.cname-cases.com
my.caa-forbid.com

bad..name
wrong.cname-cases.com, 9e454bcfec.kongcloud.dev   # trailing comment
a.example.com,b.example.com,c
chain.cname-cases.com,https://x/
"""


# -- parsing -------------------------------------------------------------------------------------------------------


def test_lines_are_parsed_lazily_with_numbers_and_reasons():
    items = list(parse(read_lines(io.StringIO(INPUT)), default_target=GATEWAY))
    assert items == [
        Item(2, "ok.cname-cases.com", "ok.cname-cases.com", GATEWAY),
        Item(3, "my.caa-forbid.com", "my.caa-forbid.com", GATEWAY),
        BadLine(5, "bad..name", "bad..name has an empty label"),
        Item(6, "wrong.cname-cases.com, 9e454bcfec.kongcloud.dev   # trailing comment", "wrong.cname-cases.com",
             GATEWAY),
        BadLine(7, "a.example.com,b.example.com,c", "too many fields (3); expected NAME or NAME,TARGET"),
        BadLine(8, "chain.cname-cases.com,https://x/",
                "target 'https://x/' looks like a URL; give the CNAME value, e.g. 9e454bcfec.kongcloud.dev"),
    ]


def test_an_overlong_line_is_malformed_and_not_kept_whole():
    text = "ok.cname-cases.com\n" + "a" * 100_000 + "\nchain.cname-cases.com\n"
    items = list(parse(read_lines(io.StringIO(text))))
    assert [type(i).__name__ for i in items] == ["Item", "BadLine", "Item"]
    bad = items[1]
    assert isinstance(bad, BadLine) and bad.line == 2 and "longer than 4096" in bad.error and len(bad.input) < 100
    assert isinstance(items[2], Item) and items[2].line == 3


# -- the command, end to end ---------------------------------------------------------------------------------------


def test_table_reports_every_domain_malformed_lines_by_number_and_the_worst_exit(fake_dns, tmp_path):
    listing = tmp_path / "domains.txt"
    listing.write_text(INPUT)
    ran = kdiag("scan", str(listing), "--nameserver", ns(fake_dns), "--only", DNS_RULES, "-t", GATEWAY, token=None)
    assert ran.code == 2, ran.all  # fail (2) outranks the errors of the malformed lines (3)
    assert "kdiag: line 5: bad..name has an empty label" in ran.err
    assert "kdiag: line 7: too many fields (3)" in ran.err
    assert "kdiag: line 8: target 'https://x/' looks like a URL" in ran.err
    rows = {line.split()[1]: line.split() for line in ran.out.splitlines() if line.strip()[:1].isdigit()}
    assert rows["ok.cname-cases.com"][:3] == ["2", "ok.cname-cases.com", "PASS"]
    assert rows["my.caa-forbid.com"][2:] == ["FAIL", "caa-permits-letsencrypt[forbids]"]
    assert rows["wrong.cname-cases.com"][2:] == ["FAIL", "dns-cname-target[wrong-target]"]
    assert "3 domains: 1 pass, 2 fail, 3 malformed lines" in ran.out and "(exit 2)" in ran.out


def test_malformed_lines_alone_make_the_exit_code_3_and_the_rest_still_runs(fake_dns):
    ran = kdiag("scan", "-", "-n", ns(fake_dns), "--only", DNS_RULES, "-t", GATEWAY, "-f", "jsonl",
                input="ok.cname-cases.com\nnot_a$name.com\nchain.cname-cases.com\n", token=None)
    assert ran.code == 3, ran.all
    docs = [json.loads(line) for line in ran.out.splitlines()]
    assert {"line": 2, "input": "not_a$name.com", "error": docs[0]["error"]} in docs
    assert "invalid characters" in docs[0]["error"]
    assert sorted(d["domain"] for d in docs if "domain" in d) == ["chain.cname-cases.com", "ok.cname-cases.com"]
    assert all(d["status"] == "pass" and d["exit_code"] == 0 for d in docs if "domain" in d)
    assert "kdiag: line 2: " in ran.err


def test_all_passing_exits_0_and_warn_exits_1(fake_dns):
    ok = kdiag("scan", "-", "-n", ns(fake_dns), "--only", DNS_RULES, "-t", GATEWAY, token=None,
               input="ok.cname-cases.com\nchain.cname-cases.com\n")
    assert ok.code == 0 and "2 domains: 2 pass" in ok.out
    warn = kdiag("scan", "-", "-n", ns(fake_dns), "--only", DNS_RULES, "-t", GATEWAY, token=None,
                 input="ok.cname-cases.com\nflat.cname-cases.com\n")
    assert warn.code == 1, warn.all
    assert "dns-cname-target[flattened]" in warn.out


def test_jsonl_is_one_compact_domain_json_document_per_line(fake_dns):
    ran = kdiag("scan", "-", "-n", ns(fake_dns), "--only", DNS_RULES, "-f", "jsonl", token=None,
                input="ok.cname-cases.com,9e454bcfec.kongcloud.dev\nmy.caa-forbid.com\n")
    lines = ran.out.splitlines()
    assert len(lines) == 2 and all(": " not in line for line in lines)  # compact
    docs = {d["domain"]: d for d in map(json.loads, lines)}
    single = kdiag("domain", "my.caa-forbid.com", "-n", ns(fake_dns), "--only", DNS_RULES, "-f", "json", token=None)
    expected = json.loads(single.out)
    got = docs["my.caa-forbid.com"]
    assert set(got) == set(expected)
    assert [(c["id"], c["status"], c["code"]) for c in got["checks"]] == \
        [(c["id"], c["status"], c["code"]) for c in expected["checks"]]
    assert docs["ok.cname-cases.com"]["target"] == GATEWAY
    assert "kdiag: 2 domains: 1 pass, 1 fail" in ran.err  # the summary goes to stderr in jsonl mode


def test_jsonl_lines_arrive_as_results_do_and_no_progress_bar_in_a_pipe(slow_dns):
    # One name never answers (each lookup runs into --timeout 4); the others must be on stdout before that ends.
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdiag", "scan", "-", "-n", ns(slow_dns), "--only", DNS_RULES, "-f", "jsonl",
         "--timeout", "4", "-c", "4"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write(f"{SLOW}\nok.cname-cases.com\nmy.caa-forbid.com\n")
    proc.stdin.close()
    first = json.loads(proc.stdout.readline())
    second = json.loads(proc.stdout.readline())
    still_running = proc.poll() is None
    rest = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 2  # my.caa-forbid.com fails, which outranks the silent name's error
    assert {first["domain"], second["domain"]} == {"ok.cname-cases.com", "my.caa-forbid.com"}
    assert still_running
    assert json.loads(rest)["domain"] == SLOW and json.loads(rest)["status"] == "error"
    assert "\r" not in err and "\x1b" not in err  # no progress bar when stderr is not a terminal


def test_ctrl_c_stops_cleanly_with_what_was_done(slow_dns, tmp_path):
    listing = tmp_path / "domains.txt"
    listing.write_text("ok.cname-cases.com\n" + f"{SLOW}\n" * 50)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdiag", "scan", str(listing), "-n", ns(slow_dns), "--only", DNS_RULES,
         "--timeout", "2", "-c", "2", "-f", "jsonl"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    assert proc.stdout is not None
    done = json.loads(proc.stdout.readline())  # the fast name is done; the slow ones are in flight
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert done["domain"] == "ok.cname-cases.com" and done["status"] == "pass"
    assert "kdiag: INTERRUPTED: 1 domain: 1 pass" in err


def test_an_unreadable_file_is_a_one_line_error(fake_dns, tmp_path):
    ran = kdiag("scan", str(tmp_path / "nope.txt"), "-n", ns(fake_dns), token=None)
    assert ran.code == 3
    assert ran.err.startswith("kdiag: error: ") and ran.err.count("\n") == 1


# -- memory --------------------------------------------------------------------------------------------------------


def _names(n: int) -> Iterator[str]:
    # *.wildok.cname-cases.com is a wildcard CNAME to the gateway: every name passes, each a distinct question.
    for i in range(n):
        yield f"n{i}.wildok.cname-cases.com\n"


class _Lines(io.TextIOBase):
    """A file-like object producing lines on demand, never holding the listing."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return next(self._lines, "")


def test_memory_stays_flat_over_many_names(fake_dns):
    # Only the CAA rule (one new question per name; the parents' answers are shared), so it runs quickly against
    # the fake resolver. sys.getallocatedblocks() counts every live Python object's memory block at no cost: a
    # report, a row or a cache entry kept per domain would add hundreds of blocks per domain.
    host, port = fake_dns.address
    settings = Settings(nameservers=(f"{host}:{port}",), only=("caa-permits-letsencrypt",), plugins=False)
    total, warm = 600, 200
    samples: dict[int, int] = {}

    def on_progress(done: int, tally: object) -> None:
        if done in (warm, total) and done not in samples:
            gc.collect()
            samples[done] = sys.getallocatedblocks()

    with Diagnoser(settings, dns_cache_size=128) as diagnoser:
        outcome = run_scan(parse(read_lines(_Lines(_names(total))), GATEWAY), diagnoser, concurrency=8,
                           on_row=lambda item, d: None, on_progress=on_progress, keep_rows=False)
    assert outcome.tally.domains == total and outcome.tally.by_status[Status.PASS] == total
    growth = samples[total] - samples[warm]
    assert growth < 20 * (total - warm), f"{growth} more memory blocks after {total - warm} more domains"


def test_scan_uses_one_shared_resolver_cache(fake_dns):
    host, port = fake_dns.address
    settings = Settings(nameservers=(f"{host}:{port}",), only=(DNS_RULES,), plugins=False)
    names = io.StringIO("".join(f"n{i}.wildok.cname-cases.com\n" for i in range(20)))
    with Diagnoser(settings) as diagnoser:
        run_scan(parse(read_lines(names), GATEWAY), diagnoser, concurrency=4)
        stats = diagnoser.dns.stats
    # CAA at wildok.cname-cases.com, cname-cases.com and com is asked once for all twenty names.
    assert stats.cache_hits >= 3 * 19
    assert stats.queries <= 20 * 5 + 3


def test_progress_bar_only_on_a_terminal(fake_dns, monkeypatch):
    from kdiag import scan as scan_module

    monkeypatch.setattr(scan_module, "stderr_isatty", lambda: True)
    ran = kdiag("scan", "-", "-n", ns(fake_dns), "--only", DNS_RULES, "-t", GATEWAY, token=None,
                input="ok.cname-cases.com\n")
    assert ran.code == 0
    assert "\r" in ran.err and "1 done" in ran.err





def test_undecodable_bytes_on_stdin_are_a_malformed_line_not_a_crash(fake_dns):
    proc = subprocess.run([sys.executable, "-m", "kdiag", "scan", "-", "-n", ns(fake_dns), "--only", DNS_RULES,
                           "-t", GATEWAY], input=b"ok.cname-cases.com\n\xff\xfe.example.com\n", capture_output=True,
                          env=env(), timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert b"kdiag: line 2: " in proc.stderr and b"Traceback" not in proc.stderr
    assert b"1 domain: 1 pass, 1 malformed line" in proc.stdout
