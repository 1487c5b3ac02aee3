"""`python -m kdiag`: the same CLI as the `kdiag` console script.

`main()` answers a bare `--version` before importing click, httpx or dnspython, so that it starts about as fast
as the interpreter itself (benchmarks/bench.py measures it); everything else goes to `kdiag.cli.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from kdiag import __version__

        sys.stdout.write(f"kdiag {__version__}\n")
        raise SystemExit(0)
    from kdiag.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
