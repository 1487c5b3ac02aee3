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
sh "$(dirname "$0")/apt-install.sh" install-bed nsd unbound

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
