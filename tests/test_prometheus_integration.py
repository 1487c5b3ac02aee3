"""A real Prometheus server scrapes `kdiag serve` the blackbox_exporter way and sees probe_success.

Prometheus (Debian package `prometheus`, installed by tests/install-prometheus.sh) runs on a free loopback port
with a generated config and a temporary TSDB. Its `kdiag` job lists fixture domains as targets and relabels
each into `/probe?target=NAME` on `kdiag serve` (started here on an ephemeral loopback port, resolving through
the fake resolver over fixtures/zones); a second job scrapes the exporter's own /metrics. The test reads the
results back through Prometheus' HTTP query API, polling up to a fixed deadline.

Skips when the prometheus binary is missing; with CI=true that is a failure instead, as for the DNS bed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

GATEWAY = "9e454bcfec.kongcloud.dev"
DNS_RULES = "dns-cname-target,caa-permits-letsencrypt"
PASSING, FAILING = "ok.cname-cases.com", "my.caa-forbid.com"
DEADLINE = 25.0  # seconds for Prometheus to start, scrape both targets and answer queries


def _prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        reason = "the prometheus binary is not installed (as root: sh tests/install-prometheus.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return binary


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(exporter: str) -> dict[str, Any]:
    # JSON is YAML: no YAML library needed to write Prometheus' config.
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "kdiag",
                "metrics_path": "/probe",
                "params": {"cname_target": [GATEWAY]},
                "static_configs": [{"targets": [PASSING, FAILING]}],
                "relabel_configs": [  # blackbox_exporter's multi-target pattern
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": exporter},
                ],
            },
            {"job_name": "kdiag_exporter", "static_configs": [{"targets": [exporter]}]},
        ],
    }


class Prometheus:
    def __init__(self, binary: str, exporter: str, workdir: Path) -> None:
        self.port = _free_port()
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps(_config(exporter), indent=2))
        self.log = workdir / "prometheus.log"
        self._log_fh = self.log.open("w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=self._log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector for `promql`; [] while Prometheus is not answering yet."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = json.load(resp)
        except OSError:
            return []
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log_fh.close()


@pytest.fixture
def prometheus(kdiag_serve, fake_dns, tmp_path) -> Iterator[Prometheus]:
    """Prometheus scraping a `kdiag serve` that resolves through the fake resolver (fake_dns)."""
    binary = _prometheus_binary()
    host, port = fake_dns.address
    server = kdiag_serve("--nameserver", f"{host}:{port}", "--only", DNS_RULES)
    prom = Prometheus(binary, server.address, tmp_path)
    try:
        yield prom
    finally:
        prom.stop()


def _by_instance(results: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in results}


def test_prometheus_scrapes_probe_success_through_relabelling(prometheus):
    deadline = time.monotonic() + DEADLINE
    success: dict[str, float] = {}
    while time.monotonic() < deadline:
        assert prometheus.proc.poll() is None, prometheus.log.read_text()
        success = _by_instance(prometheus.query('probe_success{job="kdiag"}'))
        if set(success) >= {PASSING, FAILING}:
            break
        time.sleep(0.5)
    assert set(success) >= {PASSING, FAILING}, (success, prometheus.log.read_text()[-2000:])
    assert success == {PASSING: 1.0, FAILING: 0.0}

    # The per-check series arrived with their labels, and cname_target reached the probe.
    status = prometheus.query(f'kdiag_check_status{{job="kdiag",instance="{FAILING}"}}')
    assert {(r["metric"]["rule"], r["metric"]["code"]): float(r["value"][1]) for r in status} == {
        ("dns-cname-target", "ok"): 0.0, ("caa-permits-letsencrypt", "forbids"): 2.0}
    # Prometheus' own view: both probe targets and the exporter answered every scrape.
    assert _by_instance(prometheus.query('up{job="kdiag"}')) == {PASSING: 1.0, FAILING: 1.0}
    assert all(v == 1.0 for v in _by_instance(prometheus.query('up{job="kdiag_exporter"}')).values())
    while time.monotonic() < deadline:  # the exporter job is scraped on its own schedule
        probes = prometheus.query("kdiag_exporter_probes_total")
        if probes and float(probes[0]["value"][1]) >= 2:
            break
        time.sleep(0.5)
    assert probes and float(probes[0]["value"][1]) >= 2, probes
