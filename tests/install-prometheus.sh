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
sh "$(dirname "$0")/apt-install.sh" install-prometheus prometheus

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
