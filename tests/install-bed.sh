#!/bin/sh
# Install what the DNS test bed (tests/dnsbed.py) needs, NSD and Unbound, on Debian/Ubuntu, without letting the
# stock daemons take port 53. Idempotent; CI runs it as root on a fresh machine. Quiet on success apart from
# one line per thing it did; apt's output is shown only when something fails.
set -eu

PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
say() { echo "install-bed: $*"; }

have_bins() { command -v nsd >/dev/null 2>&1 && command -v unbound >/dev/null 2>&1; }

if have_bins; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    say "nsd and unbound are not installed, and installing them needs root: sudo $0" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "nsd and unbound are not installed and there is no apt-get here; install them by hand" >&2
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

# Keep the packages' maintainer scripts from starting the stock daemons on port 53: invoke-rc.d and
# deb-systemd-invoke ask policy-rc.d, and 101 means "action forbidden". One already there (Docker's) stays.
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
install_pkgs() { apt-get install -y -q --no-install-recommends nsd unbound >>"$log" 2>&1; }
# apt-get update only when the package lists do not know the packages, or are too stale to fetch them.
if ! apt-cache show nsd unbound >/dev/null 2>&1 || ! install_pkgs; then
    say "updating the package lists"
    if ! { apt-get update -q >>"$log" 2>&1 && install_pkgs; }; then
        cat "$log" >&2
        say "could not install nsd and unbound (apt output above)" >&2
        exit 1
    fi
fi
say "installed nsd and unbound"

# Where no policy-rc.d could stop them (or systemd ignored it), stop the stock daemons this install started:
# by their pidfiles, never by name.
for pidfile in /run/nsd/nsd.pid /run/unbound.pid; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # A stale pidfile may name a reused pid: only signal it if it really is nsd or unbound (by executable:
    # NSD retitles its processes "nsd: xfrd" and so on).
    case $(readlink "/proc/$pid/exe" 2>/dev/null) in
        */nsd | */unbound) kill -TERM "$pid" && say "stopped the stock $(basename "$pidfile" .pid) (pid $pid)" ;;
    esac
done
if ! have_bins; then
    say "nsd/unbound still missing after the install" >&2
    exit 1
fi
