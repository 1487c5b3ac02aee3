"""Helpers for the Konnect tests: run `kdiag` in-process the way the console script does (exit codes included)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from click.testing import CliRunner

from kdiag.cli import main
from tests.konnect_emulator import VALID_TOKEN

GATEWAY = "9e454bcfec.kongcloud.dev"  # what fixtures/zones/kongcloud.dev.zone serves; the emulator's CP prefix


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def all(self) -> str:
        return self.out + self.err


def kdiag(*args: str, token: str | None = VALID_TOKEN, env: Mapping[str, str | None] | None = None,
          input: str | None = None) -> Ran:
    """`kdiag ARGS` through kdiag.cli.main (exit-code mapping, one-line errors), with KONNECT_TOKEN=token."""
    environ: dict[str, str | None] = {"KONNECT_TOKEN": token, "KONNECT_URL": None, "NO_COLOR": "1"}
    environ.update(env or {})
    runner = CliRunner()
    with runner.isolation(input=input, env=environ) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return Ran(code, out.getvalue().decode(), err.getvalue().decode())
