"""The `kdiag` command as a user meets it: exit codes, one-line errors, help, and never a traceback.

Most tests run `python -m kdiag` in a subprocess; long tables of bad input run `kdiag.cli.main` in-process (the
same code path from argv to exit code, minus interpreter start-up), so the file stays fast. Every DNS question
goes to a loopback server: the in-process fake resolver (tests/fakedns.py) or a UDP socket that never answers.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import kdiag
from kdiag.cli import cli, main
from tests.fakedns import FakeDns
from tests.support import kdiag_env

ZONES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"
GATEWAY = "9e454bcfec.kongcloud.dev"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"  # the rules that need nothing but DNS
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Nothing from the caller's environment may change what kdiag does here.
_DROP_ENV = ("NO_COLOR", "KONNECT_TOKEN", "KONNECT_URL", "KDIAG_DEBUG", "COLUMNS")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["KDIAG_NO_PLUGINS"] = "1"
    env.update(extra)
    return env


def kdiag_proc(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True, text=True,
                          env=clean_env(**env), timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    return proc


@pytest.fixture
def kdiag_inproc(capsys, monkeypatch):
    """Run kdiag.cli.main(argv) in this process; returns (exit code, stdout, stderr)."""
    for name in _DROP_ENV:
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return info.value.code, out, err

    return run


def assert_one_error_line(err: str, *words: str) -> None:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("kdiag: error: "), err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def silent_resolver() -> Iterator[str]:
    """A UDP socket on loopback that reads nothing and answers nothing: a resolver that never replies."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def partly_broken_dns() -> Iterator[str]:
    """The fake resolver, except that it never answers CAA questions for my.example.com."""
    with FakeDns(ZONES, overrides={("my.example.com.", "CAA"): "DROP"}) as fake:
        host, port = fake.address
        yield f"{host}:{port}"


def ns_arg(fake: FakeDns) -> str:
    host, port = fake.address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- bad input: exit 3 and one line ---------------------------------------------------------------------------

BAD_NAMES = [
    ("", "empty"),
    ("a" * 64 + ".example.com", "at most 63"),
    (".".join(["a" * 62] * 4) + ".com", "at most 253"),
    ("my_host.example.com", "invalid characters"),
    ("xn--zz.example.com", "malformed punycode"),
    ("192.0.2.1", "IP address"),
    ("[2001:db8::1]", "IP address"),
    ("*.example.com", "wildcard"),
    ("localhost", "single label"),
    ("my\nhost.example.com", "invalid characters"),  # a name with a newline still gives one line
]


@pytest.mark.parametrize(("name", "words"), BAD_NAMES, ids=[b[1] for b in BAD_NAMES])
def test_bad_names_exit_3_with_one_line(kdiag_inproc, name, words):
    code, out, err = kdiag_inproc("domain", name, "--nameserver", "127.0.0.1:9")
    assert code == 3 and out == ""
    assert_one_error_line(err, words)


def test_a_bad_name_through_the_real_command():
    proc = kdiag_proc("domain", "https://192.0.2.1/health", "--nameserver", "127.0.0.1:9")
    assert proc.returncode == 3 and proc.stdout == ""
    assert_one_error_line(proc.stderr, "192.0.2.1 is an IP address")


@pytest.mark.parametrize(("args", "words"), [
    (["--only", "dns-cname-target,no-such-rule"], ["unknown rule id no-such-rule", "known: "]),
    (["--skip", "nope"], ["unknown rule id nope"]),
    (["--only", "dns-cname-target", "--skip", "dns-cname-target"], ["left no rule"]),
    (["--timeout", "abc"], ["--timeout", "abc"]),
    (["--timeout", "0"], ["--timeout"]),
    (["--timeout", "-1"], ["--timeout"]),
    (["--timeout", "nan"], ["--timeout", "nan"]),
    (["--timeout", "inf"], ["--timeout"]),
    (["--nameserver", "dns.google"], ["--nameserver", "not an IP address"]),
    (["--nameserver", "127.0.0.1:99999"], ["--nameserver", "invalid port"]),
    (["--nameserver", "127.0.0.1:0"], ["--nameserver", "invalid port"]),
    (["--nameserver", "127.0.0.1:dns"], ["--nameserver"]),
    (["--nameserver", "[::1"], ["--nameserver"]),
    (["--nameserver", "[::1]:"], ["--nameserver"]),
    (["--nameserver", ""], ["--nameserver"]),
    (["--target", "https://gw.kongcloud.dev/"], ["--target", "looks like a URL"]),
    (["--target", "203.0.113.10"], ["IP address"]),
    (["--format", "yaml"], ["--format"]),
    (["--no-such-flag"], ["No such option"]),
])
def test_bad_flags_exit_3_with_one_line(kdiag_inproc, args, words):
    code, out, err = kdiag_inproc("domain", "my.example.com", "--nameserver", "127.0.0.1:9", *args)
    assert code == 3 and out == ""
    assert_one_error_line(err, *words)


@pytest.mark.parametrize("fmt", [["--format", "nagios"], ["-f", "nagios"], ["--format=nagios"]])
def test_a_usage_error_still_gives_nagios_a_line_on_stdout(kdiag_inproc, fmt):
    # Nagios reads stdout only; an empty stdout shows as "(No output returned from plugin)"
    code, out, err = kdiag_inproc("domain", "bad..name", *fmt)
    assert code == 3
    assert out == "KDIAG UNKNOWN - bad..name has an empty label\n"
    assert_one_error_line(err, "empty label")


def test_a_missing_name_is_a_usage_error(kdiag_inproc):
    code, out, err = kdiag_inproc("domain")
    assert code == 3 and out == ""
    assert_one_error_line(err, "Missing argument 'NAME'", "kdiag domain --help")


def test_an_unknown_command_is_a_usage_error(kdiag_inproc):
    code, _, err = kdiag_inproc("domian", "my.example.com")
    assert code == 3
    assert_one_error_line(err, "No such command 'domian'")


def test_no_arguments_shows_the_help_with_an_example():
    proc = kdiag_proc()
    assert proc.returncode == 0 and proc.stderr == ""
    assert "Usage: kdiag [OPTIONS] COMMAND" in proc.stdout
    assert "kdiag domain my.example.com --target" in proc.stdout


# --- help and version ------------------------------------------------------------------------------------------

def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the click API, which also sees lazily loaded commands (konnect)
        sub = group.get_command(ctx, name)
        assert sub is not None, name
        if isinstance(sub, click.Group):
            yield from _commands(sub, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", list(_commands(cli)), ids=lambda p: " ".join(p) or "kdiag")
def test_every_help_exits_0(kdiag_inproc, path):
    code, out, err = kdiag_inproc(*path, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"Usage: kdiag {' '.join(path)}".rstrip())


@pytest.mark.parametrize(("path", "example"), [
    ((), "kdiag domain my.example.com --target 9e454bcfec.kongcloud.dev"),
    (("domain",), "kdiag domain my.example.com --nameserver"),
    (("rules",), "kdiag rules --format json"),
])
def test_help_teaches_with_an_example(kdiag_inproc, path, example):
    code, out, _ = kdiag_inproc(*path, "-h")
    assert code == 0
    assert re.search(rf"^\s+{re.escape(example)}", out, re.MULTILINE), out


def test_help_through_the_real_command_explains_exit_codes():
    proc = kdiag_proc("--help")
    assert proc.returncode == 0
    assert "Exit codes: 0 all passed, 1 a warning, 2 a check failed, 3" in " ".join(proc.stdout.split())


def test_version():
    from importlib.metadata import version

    proc = kdiag_proc("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == f"kdiag {kdiag.__version__}\n"
    assert kdiag.__version__ == version("kdiag")


# --- against a resolver ----------------------------------------------------------------------------------------

def test_a_resolver_that_never_answers_is_exit_3_one_line_within_the_timeout(silent_resolver):
    timeout = 0.5
    started = time.monotonic()
    proc = kdiag_proc("domain", "my.example.com", "--nameserver", silent_resolver, "--timeout", str(timeout))
    elapsed = time.monotonic() - started
    assert proc.returncode == 3 and proc.stdout == ""
    assert_one_error_line(proc.stderr, silent_resolver, "did not answer", "0.5 s")
    # Interpreter start-up is ~0.5 s here; every lookup runs at once, so the total is about one timeout.
    assert elapsed < timeout + 2.5


def test_json_on_a_resolver_that_never_answers_is_still_a_document(silent_resolver):
    proc = kdiag_proc("domain", "my.example.com", "--nameserver", silent_resolver, "--timeout", "0.5",
                      "--format", "json")
    assert proc.returncode == 3
    assert_one_error_line(proc.stderr, "did not answer")
    doc = json.loads(proc.stdout)
    assert (doc["status"], doc["exit_code"], doc["domain"]) == ("error", 3, "my.example.com")
    assert doc["checks"] and all(c["status"] in ("error", "skip") for c in doc["checks"])
    assert doc["duration_ms"] < 500 + 1000  # bounded by the timeout, not by the number of lookups


def test_a_pass_exits_0_and_piped_output_has_no_colour(fake_dns):
    proc = kdiag_proc("domain", "My.Example.com.", "--target", GATEWAY + ".", "--nameserver", ns_arg(fake_dns),
                      "--only", DNS_RULES)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "\x1b" not in proc.stdout
    assert re.search(r"^dns-cname-target\s+PASS\s+ok\s", proc.stdout, re.MULTILINE)
    assert proc.stdout.rstrip().splitlines()[-1].startswith("PASS: 2 pass in ")


def test_a_failure_exits_2_and_prints_its_fix(kdiag_inproc, fake_dns):
    code, out, err = kdiag_inproc("domain", "www.example.com", "-t", GATEWAY, "-n", ns_arg(fake_dns),
                                  "--only", "dns-cname-target")
    assert (code, err) == (2, "")
    assert "  add:     www.example.com. 300 IN CNAME 9e454bcfec.kongcloud.dev." in out.splitlines()
    assert "  delete:  www.example.com. 300 IN A 198.51.100.1" in out.splitlines()


def test_a_warning_exits_1(kdiag_inproc, fake_dns):
    # flat.cname-cases.com carries the gateway's addresses without a CNAME (CNAME flattening): a warning.
    code, out, _ = kdiag_inproc("domain", "flat.cname-cases.com", "-t", GATEWAY, "-n", ns_arg(fake_dns),
                                "--only", "dns-cname-target", "--format", "json")
    doc = json.loads(out)
    assert (code, doc["status"], doc["exit_code"]) == (1, "warn", 1)


def test_one_unanswered_question_is_an_error_row_exit_3_while_the_other_checks_still_report(
        kdiag_inproc, partly_broken_dns):
    code, out, err = kdiag_inproc("domain", "my.example.com", "-t", GATEWAY, "-n", partly_broken_dns,
                                  "--timeout", "0.5", "--only", DNS_RULES, "--format", "json")
    assert (code, err) == (3, "")
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert checks["dns-cname-target"]["status"] == "pass"
    assert checks["caa-permits-letsencrypt"]["status"] == "error"


def test_a_url_is_accepted_with_a_note_on_stderr(kdiag_inproc, fake_dns):
    code, out, err = kdiag_inproc("domain", "https://my.example.com/path", "-t", GATEWAY, "-n", ns_arg(fake_dns),
                                  "--only", "dns-cname-target", "--format", "json")
    assert code == 0
    assert err == ("kdiag: note: https://my.example.com/path looks like a URL; checking its host name "
                   "my.example.com\n")
    doc = json.loads(out)
    assert doc["domain"] == "my.example.com" and doc["target"] == GATEWAY


def test_ipv6_nameserver_with_port_is_accepted(kdiag_inproc, fake_dns_v6):
    host, port = fake_dns_v6.address
    code, out, err = kdiag_inproc("domain", "my.example.com", "-t", GATEWAY, "--nameserver", f"[{host}]:{port}",
                                  "--only", "dns-cname-target", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["checks"][0]["code"] == "ok"


def test_ipv6_nameserver_syntax_on_port_5353(kdiag_inproc, silent_resolver):
    # [::1]:5353 parses (nothing listens there, and the other server is silent too)...
    code, _, err = kdiag_inproc("domain", "my.example.com", "-n", "[::1]:5353", "-n", silent_resolver,
                                "--timeout", "0.2", "--only", "dns-cname-target")
    # ...so the error is about nobody answering, naming both servers, not about the flag's syntax.
    assert code == 3
    assert_one_error_line(err, "[::1]:5353", silent_resolver, "did not answer")
    assert "--nameserver:" not in err


# --- colour ----------------------------------------------------------------------------------------------------

def _run_on_a_terminal(args: list[str], **env: str) -> str:
    """Run kdiag with stdout on a pseudo-terminal, as a person would see it."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "kdiag", *args], stdout=follower,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=clean_env(**env))
        os.close(follower)
        chunks = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        proc.wait(timeout=10)
        assert b"Traceback" not in proc.stderr.read()
        proc.stderr.close()
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_real_terminal(fake_dns):
    args = ["domain", "my.example.com", "-t", GATEWAY, "-n", ns_arg(fake_dns), "--only", DNS_RULES]
    assert "\x1b[32mPASS\x1b[0m" in _run_on_a_terminal(args)


@pytest.mark.parametrize(("flags", "env", "coloured"), [
    ([], {}, True),
    (["--no-color"], {}, False),
    ([], {"NO_COLOR": "1"}, False),
    ([], {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value counts
])
def test_colour_follows_no_color_and_the_flag_on_a_terminal(kdiag_inproc, fake_dns, monkeypatch, flags, env,
                                                            coloured):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # kdiag's (and click's) check, as on a terminal
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, _ = kdiag_inproc("domain", "my.example.com", "-t", GATEWAY, "-n", ns_arg(fake_dns),
                                "--only", DNS_RULES, *flags)
    assert code == 0 and "PASS" in out
    assert ("\x1b[32mPASS\x1b[0m" in out) is coloured
    if not coloured:
        assert "\x1b" not in out


def test_json_never_has_colour_even_on_a_terminal(kdiag_inproc, fake_dns, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, _ = kdiag_inproc("domain", "my.example.com", "-t", GATEWAY, "-n", ns_arg(fake_dns),
                                "--only", DNS_RULES, "-f", "json")
    assert code == 0 and "\x1b" not in out
    json.loads(out)


def test_a_dns_only_diagnosis_loads_neither_cryptography_nor_http_nor_the_konnect_commands(fake_dns):
    # Start-up is most of a `kdiag domain` run: what a run does not need must not be imported (and what the TLS
    # checks need is loaded on a thread of its own, see kdiag.diagnose). A fresh interpreter, as a user runs it.
    host, port = fake_dns.address
    code = textwrap.dedent(f"""
        import sys
        from kdiag.cli import main
        try:
            main(["domain", "ok.cname-cases.com", "-n", "{host}:{port}", "--only",
                  "dns-cname-target,caa-permits-letsencrypt", "-f", "json"])
        except SystemExit:
            pass
        loaded = [m for m in ("cryptography", "http.client", "kdiag.konnect.cli", "tabulate", "dns")
                  if m in sys.modules]
        print("LOADED", loaded, file=sys.stderr)
    """)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=kdiag_env(), timeout=60)
    assert "LOADED []" in ran.stderr, ran.stderr
    assert json.loads(ran.stdout)["status"] == "pass"
