"""The `kdiag` command line: argument parsing, context building and exit codes; no diagnosis logic.

Exit codes are a contract (README "Exit codes"): 0 OK, 1 WARNING, 2 CRITICAL (a check failed), 3 UNKNOWN
(a check errored, or the input or usage was invalid). Every error the user can cause ends in one line
`kdiag: error: …` on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from kdiag import __version__
from kdiag.errors import KdiagError, UsageError
from kdiag.konnect.regions import REGIONS as KONNECT_REGIONS

EXIT_UNKNOWN = 3

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def note(message: str) -> None:
    """Informational output for people: stderr, so stdout stays machine-readable."""
    click.echo(f"kdiag: note: {message}", err=True)


class _Commands(click.Group):
    """The top-level group; the `konnect` command tree is imported only when it is used or listed (a diagnosis
    never needs it, and every import is start-up time for each `kdiag domain` run)."""

    LAZY = {"konnect": ("kdiag.konnect.cli", "konnect")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            module, attr = self.LAZY[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="kdiag", message="%(prog)s %(version)s")
@click.option("--no-plugins", is_flag=True, envvar="KDIAG_NO_PLUGINS",
              help="Run only the built-in rules (also KDIAG_NO_PLUGINS=1).")
@click.pass_context
def cli(ctx: click.Context, no_plugins: bool) -> None:
    """Diagnose custom domains on Kong Konnect serverless gateways.

    \b
    Check a domain the way Let's Encrypt and Konnect will:
      kdiag domain my.example.com --target 9e454bcfec.kongcloud.dev
    List the checks and the codes they can report:
      kdiag rules

    Exit codes: 0 all passed, 1 a warning, 2 a check failed, 3 kdiag could not tell (or bad input).
    """
    obj = ctx.ensure_object(dict)
    obj.setdefault("plugins", not no_plugins)


def _finite(value: float) -> float:
    """FloatRange lets NaN through (every comparison with it is false)."""
    if value != value:
        raise click.BadParameter(f"{value} is not a number of seconds, e.g. 5")
    return value


def _rule_selection_options(fn: Any) -> Any:
    fn = click.option("--skip", "skip", multiple=True, metavar="ID[,ID…]",
                      help="Do not run these rules.")(fn)
    fn = click.option("--only", "only", multiple=True, metavar="ID[,ID…]",
                      help="Run only these rules (see `kdiag rules`).")(fn)
    return fn


def _diagnosis_options(fn: Any) -> Any:
    """The options every command that diagnoses shares (`domain`, `serve`): resolver, rule selection and what to
    expect. Their values map one to one onto kdiag.diagnose.Settings; help lists them in this order."""
    for option in reversed((
        click.option(
            "-n", "--nameserver", "nameservers", multiple=True, metavar="ADDR[:PORT]",
            help="Recursive resolver to ask instead of the system's (repeatable; [v6]:port for IPv6)."),
        click.option(
            "--timeout", type=click.FloatRange(min=0.05, max=300), default=5.0, show_default=True,
            metavar="SECONDS", callback=lambda ctx, param, value: _finite(value),
            help="Bound on each DNS lookup, TCP connect, TLS handshake and HTTP response."),
        _rule_selection_options,
        click.option(
            "--validation-methods", default="http-01,tls-alpn-01", show_default=True, metavar="LIST",
            help="ACME challenge types assumed for Konnect's certificate requests; a CAA "
                 "validationmethods parameter must allow one of them."),
        click.option(
            "--connect-to", "connect_to", multiple=True, metavar="HOST1:PORT1:HOST2:PORT2",
            help="As in curl: TLS/HTTP checks for HOST1:PORT1 connect to HOST2:PORT2 instead, while SNI, Host "
                 "and certificate checks still use the name; empty fields match any / keep the original, "
                 "IPv6 in brackets. Test a gateway before DNS cutover: "
                 "--connect-to my.example.com:443:9e454bcfec.kongcloud.dev:443"),
        click.option(
            "--resolve", "resolve", multiple=True, metavar="[+]HOST:PORT:ADDR[,ADDR…]",
            help="As in curl: TLS/HTTP checks use these addresses for HOST:PORT (HOST * for any), e.g. "
                 "--resolve my.example.com:443:203.0.113.10. Addresses given here are used as typed; "
                 "addresses from DNS are dialled only when publicly routable."),
        click.option(
            "--ca-bundle", "ca_bundle", type=click.Path(dir_okay=False), metavar="FILE",
            help="PEM file of extra trust anchors for tls-certificate, added to the system's."),
        click.option(
            "--expiry-warn-days", type=click.IntRange(min=0), default=14, show_default=True, metavar="DAYS",
            help="tls-certificate warns when fewer days are left (Let's Encrypt renews 30 days before the end "
                 "of a 90-day certificate)."),
        click.option(
            "--region", type=click.Choice(KONNECT_REGIONS), default="us", show_default=True,
            help="Konnect region for control-plane lookups (konnect-domain-status; token from KONNECT_TOKEN)."),
        click.option(
            "--konnect-url", metavar="URL", envvar="KONNECT_URL",
            help="Send Konnect API requests here instead of Konnect's hosts (staging, tests; also KONNECT_URL)."),
        click.option(
            "--control-plane", "control_plane", metavar="ID",
            help="Control plane a missing domain should be added to (named in the generated fix)."),
    )):
        fn = option(fn)
    return fn


def _output_option(fn: Any) -> Any:
    return click.option(
        "-o", "--output", "output", type=click.Path(dir_okay=False), metavar="FILE",
        help="Write the output to FILE instead of stdout, atomically (a temporary file in the same directory, "
             "then a rename), e.g. a .prom file for the node_exporter textfile collector.")(fn)


def _emit(fmt: str, report: Any, output: str | None, *, color: bool, expiry_warn_days: int) -> None:
    """Print the report in `fmt` on stdout, or replace FILE with it (--output)."""
    from kdiag.formats import render, write_atomically

    text = render(fmt, report, color=color, expiry_warn_days=expiry_warn_days)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))  # the Prometheus text already ends its last line
        return
    try:
        write_atomically(output, text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        raise UsageError(f"--output {output}: {exc.strerror or exc}") from None


class _Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """`90s`, `30m`, `2h`, `500ms` (or a bare number of seconds)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        from kdiag.watch import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _wait_options(fn: Any) -> Any:
    for option in reversed((
        click.option(
            "--wait", is_flag=True,
            help="Diagnose again until no check fails or errors (warnings count as done), showing on stderr what "
                 "still fails and when the next try is; then print the last diagnosis. Tries follow the smallest "
                 "DNS TTL behind a failing check (5 s to 5 min). Ctrl-C prints the last one."),
        click.option(
            "--wait-timeout", type=_Duration(), default="30m", show_default=True, metavar="DURATION",
            help="With --wait: give up after this long (90s, 30m, 2h); the exit code is the last diagnosis'."),
        click.option(
            "--wait-interval", type=_Duration(), default=None, metavar="DURATION",
            help="With --wait: try again at this fixed interval instead of following the TTLs."),
        click.option(
            "--readd", is_flag=True,
            help="With --wait and KONNECT_TOKEN: once DNS and CAA pass, remove and re-add the domain in Konnect "
                 "(it never re-validates a serverless domain by itself) and wait until it is ready."),
    )):
        fn = option(fn)
    return fn


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("-t", "--target", metavar="HOST",
              help="The CNAME value Konnect shows for the domain, e.g. 9e454bcfec.kongcloud.dev. "
                   "Without it any name under kongcloud.dev is accepted.")
@_diagnosis_options
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json", "nagios", "prometheus"]),
              default="table", show_default=True,
              help="Output format. nagios: one Monitoring Plugins line, `KDIAG STATE - summary | perfdata`; "
                   "prometheus: text exposition with blackbox_exporter's names (probe_success, …).")
@_output_option
@click.option("--no-color", is_flag=True, help="No colours (also NO_COLOR). Colour is used only on a terminal.")
@_wait_options
@click.pass_obj
def domain(obj: dict[str, Any], /, name: str, target: str | None, fmt: str, output: str | None, no_color: bool,
           wait: bool, wait_timeout: float, wait_interval: float | None, readd: bool, **given: Any) -> int:
    """Check that NAME is ready to serve a Konnect serverless gateway.

    \b
    Runs every rule (see `kdiag rules`) at once and prints one row per check; every failure
    comes with its exact fix: the DNS record to add or delete, or the command to run.

    \b
    Examples:
      kdiag domain my.example.com --target 9e454bcfec.kongcloud.dev
      kdiag domain my.example.com -t 9e454bcfec.kongcloud.dev --format json
      kdiag domain my.example.com --nameserver 1.1.1.1 --only caa-permits-letsencrypt
      kdiag domain my.example.com --connect-to my.example.com:443:9e454bcfec.kongcloud.dev:443
      kdiag domain my.example.com --format nagios
      kdiag domain my.example.com --format prometheus --output /var/lib/node_exporter/my.example.com.prom
      kdiag domain my.example.com --wait --readd
    """
    from kdiag.diagnose import Diagnoser
    from kdiag.names import InvalidName, normalize_domain, normalize_target

    if not wait and (readd or wait_interval is not None):
        raise UsageError("--readd and --wait-interval only make sense with --wait")
    try:  # bad input is rejected before any client (resolver, Konnect) is even built
        normalize_domain(name)
        if target:
            normalize_target(target)
    except InvalidName as exc:
        raise UsageError(str(exc)) from None
    settings = _settings_from(obj, given)
    with Diagnoser(settings) as diagnoser:
        if wait:
            from kdiag.watch import Watcher

            watcher = Watcher(diagnoser, timeout=wait_timeout, interval=wait_interval, readd=readd,
                              say=lambda line: click.echo(f"kdiag: wait: {line}", err=True))
            diagnosis = watcher.run(name, target).diagnosis
        else:
            diagnosis = diagnoser.diagnose(name, target)
        servers = ", ".join(str(ns) for ns in diagnoser.dns.nameservers)
    report = diagnosis.report
    for text in report.notes:
        note(text)
    if diagnosis.resolver_silent:
        # Nothing was learnt about the domain: one line rather than a table of identical errors. Machine formats
        # still get their document (status error, exit 3): Nagios reads stdout only.
        error = UsageError(f"the resolver ({servers}) did not answer any query within {settings.timeout:g} s; "
                           "check --nameserver or the network")
        if fmt != "table":
            _emit(fmt, report, output, color=False, expiry_warn_days=settings.expiry_warn_days)
            error.reported = True
        raise error
    # no-color.org: NO_COLOR set to a non-empty value turns colour off.
    color = fmt == "table" and not no_color and not os.environ.get("NO_COLOR") and sys.stdout.isatty()
    _emit(fmt, report, output, color=color and output is None, expiry_warn_days=settings.expiry_warn_days)
    return int(report.exit_code)


def _settings_from(obj: dict[str, Any], given: dict[str, Any]) -> Any:
    """kdiag.diagnose.Settings from the options of _diagnosis_options (shared by domain, scan and serve)."""
    from kdiag.diagnose import Settings

    return Settings(nameservers=tuple(given["nameservers"]), timeout=given["timeout"], only=tuple(given["only"]),
                    skip=tuple(given["skip"]), validation_methods=tuple(given["validation_methods"].split(",")),
                    connect_to=tuple(given["connect_to"]), resolve=tuple(given["resolve"]),
                    ca_bundle=given["ca_bundle"], expiry_warn_days=given["expiry_warn_days"],
                    region=given["region"], konnect_url=given["konnect_url"],
                    control_plane=given["control_plane"], plugins=obj["plugins"])


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def rules(obj: dict[str, Any], fmt: str) -> int:
    """List every rule: id, what "pass" means, the codes it can report, and where it comes from.

    \b
    Examples:
      kdiag rules
      kdiag rules --format json
      kdiag --no-plugins rules
    """
    import json

    from tabulate import tabulate

    from kdiag.engine import ENGINE_CODES
    from kdiag.registry import load_rules

    loaded = load_rules(plugins=obj["plugins"])
    if fmt == "json":
        click.echo(json.dumps([{"id": r.id, "title": r.title, "codes": dict(r.codes), "origin": r.origin}
                               for r in loaded], indent=2))
    else:
        rows = [(r.id, r.title, ", ".join(r.codes), r.origin) for r in loaded]
        click.echo(tabulate(rows, headers=("ID", "TITLE", "CODES", "ORIGIN"), maxcolwidths=[None, 40, 50, None]))
        click.echo(f"\nAny rule may also report: {', '.join(ENGINE_CODES)} (status error).")
    return 0




# -- `kdiag scan` (logic in kdiag/scan.py) ----------------------------------------------------------------------


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-t", "--target", metavar="HOST", help="The CNAME value for lines that give none (NAME,TARGET).")
@click.option("-c", "--concurrency", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Domains diagnosed at once (one shared resolver cache).")
@_diagnosis_options
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table", show_default=True,
              help="table: one row per domain at the end, then counts; jsonl: one compact `domain --format "
                   "json` document per line as results arrive.")
@click.pass_obj
def scan(obj: dict[str, Any], /, file: str, target: str | None, concurrency: int, fmt: str, **given: Any) -> int:
    """Diagnose every domain in FILE (- for stdin): one NAME or NAME,TARGET per line; # comments.

    \b
    A malformed line is reported with its number (`kdiag: line 7: …`; in jsonl as
    {"line": 7, "input": "…", "error": "…"}), counts as an error, and the rest still runs.
    Exit code: the worst over all domains (2 a check failed, 3 an error or a malformed line,
    1 a warning, 0 all passed); 130 after Ctrl-C, which prints what was done.

    \b
    Examples:
      kdiag scan domains.txt --target 9e454bcfec.kongcloud.dev
      kdiag scan - --format jsonl --only dns-cname-target,caa-permits-letsencrypt < domains.txt
    """
    import contextlib
    import io

    from kdiag.diagnose import Diagnoser
    from kdiag.names import InvalidName, normalize_target
    from kdiag.output import report_dict
    from kdiag.scan import (
        DNS_CACHE,
        Progress,
        count_lines,
        jsonl_line,
        parse,
        read_lines,
        render_table,
        run_scan,
        stderr_isatty,
        summary,
        worst_exit,
    )

    settings = _settings_from(obj, given)
    try:
        default_target = normalize_target(target) if target else None
    except InvalidName as exc:
        raise UsageError(str(exc)) from None
    try:
        # Undecodable bytes become U+FFFD, so such a line is reported as malformed instead of ending the scan.
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace") \
            if file == "-" and hasattr(sys.stdin, "buffer") else sys.stdin
        stream: Any = contextlib.nullcontext(stdin) if file == "-" else \
            open(file, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    progress = Progress(sys.stderr, count_lines(file) if file != "-" else None) if stderr_isatty() else None

    def on_row(item: Any, diagnosis: Any) -> None:
        if fmt == "jsonl":
            click.echo(jsonl_line(report_dict(diagnosis.report)))

    def on_bad(bad: Any) -> None:
        if progress is not None:
            progress.close()
        click.echo(f"kdiag: line {bad.line}: {bad.error}", err=True)
        if fmt == "jsonl":
            click.echo(jsonl_line(bad.as_dict()))

    with stream as lines, Diagnoser(settings, dns_cache_size=DNS_CACHE, dns_workers=max(16, 4 * concurrency),
                                    parallel_rules=False) as diagnoser:
        outcome = run_scan(parse(read_lines(lines), default_target), diagnoser, concurrency=concurrency,
                           on_row=on_row, on_bad=on_bad, keep_rows=fmt == "table",
                           on_progress=progress.update if progress is not None else None)
    if progress is not None:
        progress.close()
    if fmt == "table":
        click.echo(render_table(outcome))
    else:
        click.echo(f"kdiag: {summary(outcome)}", err=True)
    return worst_exit(outcome)


# -- `kdiag schema` and `kdiag serve` (logic in kdiag/schema.py and kdiag/serve.py) ---------------------------------


@cli.command(context_settings=CONTEXT_SETTINGS)
def schema() -> int:
    """Print the JSON Schema (draft 2020-12) of `kdiag domain --format json`.

    \b
    Examples:
      kdiag schema > kdiag-report.schema.json
      kdiag domain my.example.com -f json | check-jsonschema --schemafile kdiag-report.schema.json -
    """
    from kdiag.schema import render_schema

    click.echo(render_schema())
    return 0


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("--listen", default="127.0.0.1:9115", show_default=True, metavar="ADDR:PORT",
              help="Where to answer HTTP ([v6]:PORT for IPv6; port 0 picks a free one, printed on stderr).")
@click.option("--timeout-offset", type=click.FloatRange(min=0, max=60), default=0.5, show_default=True,
              metavar="SECONDS", callback=lambda ctx, param, value: _finite(value),
              help="Answer this long before the scrape timeout (X-Prometheus-Scrape-Timeout-Seconds or "
                   "timeout=, else 10 s), with probe_success 0 if the diagnosis is not done by then.")
@_diagnosis_options
@click.pass_obj
def serve(obj: dict[str, Any], /, listen: str, timeout_offset: float, **given: Any) -> int:
    """Run a Prometheus exporter: /probe?target=NAME diagnoses NAME (blackbox_exporter style).

    \b
    GET /probe?target=NAME[&cname_target=HOST][&timeout=SECONDS]
        the diagnosis as Prometheus text: probe_success, probe_duration_seconds,
        probe_ssl_earliest_cert_expiry, kdiag_check_status{rule,code} (0 pass/skip,
        1 warn, 2 fail, 3 error), ...; a bad parameter is a 400 with a one-line reason
    GET /metrics      the exporter's own metrics
    GET /-/healthy    200 while serving
    Stops cleanly on SIGINT or SIGTERM.

    \b
    Examples:
      kdiag serve --listen 127.0.0.1:9115 --only dns-cname-target,caa-permits-letsencrypt
      curl '127.0.0.1:9115/probe?target=my.example.com&cname_target=9e454bcfec.kongcloud.dev'

    \b
    Prometheus scrape config (each target becomes ?target=; the exporter's address is fixed):
      - job_name: kdiag
        metrics_path: /probe
        static_configs: [{targets: [my.example.com, api.example.org]}]
        relabel_configs:
          - {source_labels: [__address__], target_label: __param_target}
          - {source_labels: [__param_target], target_label: instance}
          - {target_label: __address__, replacement: 127.0.0.1:9115}
    """
    from kdiag.diagnose import Diagnoser
    from kdiag.serve import Exporter, exit_if_work_was_abandoned, parse_listen, run

    host, port = parse_listen(listen)
    settings = _settings_from(obj, given)
    exporter = Exporter(Diagnoser(settings), timeout_offset=timeout_offset)
    run(exporter, host, port, ready=lambda url: note(f"serving on {url} (probe: {url}probe?target=NAME)"))
    exit_if_work_was_abandoned(0)
    return 0



def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: maps every outcome to the documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="kdiag", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        code = 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", args)
    except KdiagError as exc:
        # (a report already printed on stdout, as for a silent resolver, needs no second Nagios line)
        _fail(str(exc), () if exc.reported else args)
    except click.Abort:
        click.echo("kdiag: interrupted", err=True)
        code = 130
    except click.ClickException as exc:
        _fail(exc.format_message(), args)
    except BrokenPipeError:
        # `kdiag … | head`: the reader went away; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_UNKNOWN
    except Exception as exc:  # last line of defence: one line, never a traceback
        if os.environ.get("KDIAG_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set KDIAG_DEBUG=1 for a traceback)", args)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, argv: Sequence[str] = ()) -> NoReturn:
    line = " ".join(message.split())
    click.echo(f"kdiag: error: {line}", err=True)
    if _wants_nagios(argv):
        # Nagios reads stdout only: without this line it would show "(No output returned from plugin)".
        click.echo(f"KDIAG UNKNOWN - {line}")
    sys.exit(EXIT_UNKNOWN)


def _wants_nagios(argv: Sequence[str]) -> bool:
    """Nagios reads this run's stdout: --format nagios without --output FILE."""
    args = list(argv)
    if any(a in ("-o", "--output") or a.startswith("--output=") for a in args):
        return False
    return any(a in ("--format=nagios", "-fnagios") or (a in ("--format", "-f") and args[i + 1:i + 2] == ["nagios"])
               for i, a in enumerate(args))
