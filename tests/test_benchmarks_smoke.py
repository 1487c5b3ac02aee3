"""The benchmark script still runs and reports (tiny sizes, the fake resolver); nothing about speed is asserted.

The real numbers come from `sudo python benchmarks/bench.py` run by hand (see its docstring).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("curl") is None,
                    reason="the sequential comparison runs openssl and curl")
def test_the_benchmark_script_runs_and_prints_its_table():
    env = {k: v for k, v in os.environ.items() if k not in ("KONNECT_TOKEN", "KONNECT_URL")}
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke", "--names", "6", "--runs", "1"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0] == "| measurement | result | target | verdict | reproduce |"
    measured = " ".join(table)
    for what in ("1. `kdiag domain`", "2. sequential tools", "3. `kdiag scan`", "3b. `kdiag scan`",
                 "4. `python -m kdiag --version`"):
        assert what in measured
    assert "Traceback" not in proc.stderr
