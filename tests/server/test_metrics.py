"""GET /metrics: parsed with prometheus_client's parser in-process, and scraped by a real
Prometheus from a real `shipyard serve`."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from shipyard.events import Event, Phase
from shipyard.server.metrics import Metrics

from .conftest import Api
from .serve_process import free_port, serving
from .test_server_core import wait_finished

pytestmark = pytest.mark.integration

PROMETHEUS_WAIT = 120.0


def samples(api: Api) -> list[Sample]:
    scraped = api.client.get("/metrics")
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(scraped.text) for s in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float | None:
    for sample in found:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


def test_a_rollout_is_counted_with_its_durations_and_the_fleet_is_read_at_scrape(
    api: Api,
) -> None:
    before = samples(api)
    assert value(before, "shipyard_instances", status="never deployed") == 1.0
    assert value(before, "shipyard_instances_stale") == 1.0
    started = api.client.post("/api/rollouts", json={"instances": ["web@local"], "force": True})
    rollout_id = started.json()["id"]
    wait_finished(api, rollout_id)
    after = samples(api)
    assert value(after, "shipyard_deployments_total", result="success", service="web") == 1.0
    assert value(after, "shipyard_deployment_duration_seconds_count", result="success") == 1.0
    assert (value(after, "shipyard_step_duration_seconds_count", step="uploading") or 0) >= 1
    assert value(after, "shipyard_instances", status="success") == 1.0
    assert value(after, "shipyard_instances_stale") is None
    assert value(after, "shipyard_rollouts_in_flight") == 0.0
    assert value(after, "shipyard_sse_clients") == 0.0
    assert value(after, "shipyard_hosts_unreachable") == 0.0


def test_requests_are_labelled_by_route_template_never_the_raw_path(api: Api) -> None:
    api.client.get("/api/rollouts/no-such-rollout")
    found = samples(api)
    template = "/api/rollouts/{rollout_id}"
    assert value(found, "shipyard_http_requests_total", route=template, status="404") == 1.0
    assert not [s for s in found if "no-such-rollout" in str(s.labels)]


def test_metrics_need_a_token(api: Api) -> None:
    assert api.anonymous.get("/metrics").status_code == 401


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: run scripts/system-deps")
    return found


def test_a_real_prometheus_scrapes_a_real_server(
    served_root: Path, tmp_path: Path, prometheus_binary: str
) -> None:
    env = {"SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db", "SHIPYARD_ACTOR": "srv"}
    with serving(served_root / "shipyard.yaml", env, log=tmp_path / "serve.log") as server:
        assert server.token is not None
        token_file = tmp_path / "token"
        token_file.write_text(server.token)
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: shipyard\n"
            f"    authorization: {{credentials_file: {token_file}}}\n"
            f"    static_configs: [{{targets: ['{server.url.removeprefix('http://')}']}}]\n"
        )
        port = free_port()
        with (tmp_path / "prometheus.log").open("w") as out:
            prometheus = subprocess.Popen(
                [prometheus_binary, f"--config.file={config}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            found = query_until_present(f"http://127.0.0.1:{port}", prometheus, tmp_path)
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=30)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(timeout=30)
    assert found["metric"]["job"] == "shipyard"


def query_until_present(url: str, prometheus: subprocess.Popen[bytes], logs: Path) -> dict:  # type: ignore[type-arg]
    """The target is up and a shipyard metric is in Prometheus (waits for both)."""
    deadline = time.monotonic() + PROMETHEUS_WAIT
    last = ""
    while time.monotonic() < deadline:
        if prometheus.poll() is not None:
            raise AssertionError((logs / "prometheus.log").read_text())
        with contextlib.suppress(httpx.HTTPError):
            up = httpx.get(f"{url}/api/v1/query", params={"query": 'up{job="shipyard"}'})
            metric = httpx.get(f"{url}/api/v1/query", params={"query": "shipyard_instances"})
            last = f"{up.text}\n{metric.text}"
            ups = up.json()["data"]["result"]
            found = metric.json()["data"]["result"]
            if ups and ups[0]["value"][1] == "1" and found:
                return dict(found[0])
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never saw the server up with its metrics:\n{last}")


def finished(host: str, result: str, detail: str, deployment: str) -> Event:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Event(Phase.FINISHED, at, "r1", deployment, f"web@{host}", "east", host, result, detail)


def unreachable(metrics: Metrics) -> float:
    found = text_string_to_metric_families(generate_latest(metrics.registry).decode())
    [sample] = [s for f in found for s in f.samples if s.name == "shipyard_hosts_unreachable"]
    return float(sample.value)


def test_a_host_is_unreachable_from_a_connect_failure_until_a_deployment_there_works() -> None:
    metrics = Metrics()
    metrics.heard(finished("h1", "failed", "h1: cannot connect to h1:22: refused", "d1"))
    metrics.heard(finished("h2", "failed", "h2: the health check failed", "d2"))
    assert unreachable(metrics) == 1.0
    metrics.heard(finished("h1", "success", "", "d3"))
    assert unreachable(metrics) == 0.0
