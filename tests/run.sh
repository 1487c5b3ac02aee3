#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the servers the tests run for real (NSD, Unbound,
# Prometheus; as root), kdiag with its test dependencies, then runs pytest. Extra arguments go to pytest
# (e.g. tests/run.sh -k caa).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
  bash tests/install-bed.sh          # NSD + Unbound: the real recursive DNS path
  bash tests/install-prometheus.sh   # a real Prometheus scraping `kdiag serve`
else
  echo "run.sh: not root: the DNS bed and Prometheus tests skip unless their servers are installed" >&2
fi
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

set +e
python3 -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "run.sh: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
