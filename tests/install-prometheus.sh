#!/bin/sh
# Install the Prometheus server that tests/test_prometheus_integration.py runs (Debian package `prometheus`),
# without letting the stock service start: the test runs its own instance on a loopback port with its own
# config and storage. Idempotent; CI runs it as root on a fresh machine. Quiet on success apart from one line
# per thing it did; apt's output is shown only when something fails.
set -eu

PATH="$PATH:/usr/sbin:/usr/local/sbin:/sbin"
say() { echo "install-prometheus: $*"; }

have_bin() { command -v prometheus >/dev/null 2>&1; }

if have_bin; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    say "prometheus is not installed, and installing it needs root: sudo $0" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "prometheus is not installed and there is no apt-get here; install it by hand" >&2
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

# Keep the package's maintainer scripts from starting the stock service (port 9090, /var/lib/prometheus):
# invoke-rc.d and deb-systemd-invoke ask policy-rc.d, and 101 means "action forbidden". One already there
# (Docker's) stays.
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
install_pkgs() { apt-get install -y -q --no-install-recommends prometheus >>"$log" 2>&1; }
# apt-get update only when the package lists do not know the package, or are too stale to fetch it.
if ! apt-cache show prometheus >/dev/null 2>&1 || ! install_pkgs; then
    say "updating the package lists"
    if ! { apt-get update -q >>"$log" 2>&1 && install_pkgs; }; then
        cat "$log" >&2
        say "could not install prometheus (apt output above)" >&2
        exit 1
    fi
fi
say "installed prometheus"

# Where no policy-rc.d could stop it (or systemd ignored it), stop the stock service this install started:
# through systemd when it runs the machine, else by the pid of the packaged binary, never by name.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-active --quiet prometheus 2>/dev/null; then
        systemctl stop prometheus && say "stopped the stock prometheus service"
    fi
else
    for dir in /proc/[0-9]*; do
        # Only the daemon the package runs: /usr/bin/prometheus with the packaged configuration (no
        # --config.file, or one under /etc/prometheus). Instances with their own config, like the tests', stay.
        [ "$(readlink "$dir/exe" 2>/dev/null)" = /usr/bin/prometheus ] || continue
        args=$(tr '\0' ' ' <"$dir/cmdline" 2>/dev/null) || continue
        case $args in
            *--config.file=/etc/prometheus/* | *"--config.file /etc/prometheus/"*) ;;
            *--config.file*) continue ;;
        esac
        pid=${dir#/proc/}
        kill -TERM "$pid" && say "stopped the stock prometheus (pid $pid)"
    done
fi
if ! have_bin; then
    say "prometheus still missing after the install" >&2
    exit 1
fi
