#!/bin/sh
# Install Debian packages for the tests without letting their maintainer scripts start the stock services
# (tests run their own instances on loopback). Used by install-bed.sh and install-prometheus.sh:
#   sh tests/apt-install.sh WHO PACKAGE...
# Needs root and apt-get; apt's output is shown only when something fails.
set -eu

who=$1
shift
say() { echo "$who: $*"; }

if [ "$(id -u)" != 0 ]; then
    say "$* not installed, and installing needs root: sudo $0 $who $*" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "$* not installed and there is no apt-get here; install by hand" >&2
    exit 1
fi

log=$(mktemp)
policy=/usr/sbin/policy-rc.d
cleanup() {
    [ -n "${own_policy:-}" ] && rm -f "$policy"
    rm -f "$log"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# invoke-rc.d and deb-systemd-invoke ask policy-rc.d, and 101 means "action forbidden". One already there
# (Docker's) stays.
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
install_pkgs() { apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1; }
# apt-get update only when the package lists do not know the packages, or are too stale to fetch them.
if ! apt-cache show "$@" >/dev/null 2>&1 || ! install_pkgs "$@"; then
    say "updating the package lists"
    if ! { apt-get update -q >>"$log" 2>&1 && install_pkgs "$@"; }; then
        cat "$log" >&2
        say "could not install $* (apt output above)" >&2
        exit 1
    fi
fi
say "installed $*"
