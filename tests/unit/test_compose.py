"""``compose/``: the compose file, Prometheus's config and rules, Grafana's provisioning and
dashboard parse, fit together, and refer only to metrics this code exports.

No Docker engine is needed: the files are read as YAML and JSON (PyYAML comes with the dev
extra, through schemathesis).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import api.coder_metrics  # registers the coderd_insights_* collector
import insights.metrics  # noqa: F401  (registers the worker's and the API's metrics)
from insights.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
# Metric names of this service in PromQL (label values such as job="insights-worker" use
# dashes, label names have neither prefix).
METRIC = re.compile(r"\b(?:insights|coderd)_[a-z0-9_]+\b")
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+$")
DEFAULT = re.compile(r"^\$\{(\w+):-([^}]+)\}$")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> Any:
    return _yaml(COMPOSE / "docker-compose.yml")


@pytest.fixture(scope="module")
def prometheus() -> Any:
    return _yaml(COMPOSE / "prometheus" / "prometheus.yml")


@pytest.fixture(scope="module")
def dashboard() -> Any:
    return json.loads((COMPOSE / "grafana" / "dashboards" / "insights.json").read_text())


def exported_samples() -> set[str]:
    """Every sample name the registered metrics can produce (labelled ones included, before
    any sample exists)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Bind mounts of a service: target -> (source relative to compose/, mode)."""
    out = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if parts[0].startswith("./"):
            out[parts[1]] = (parts[0], parts[2] if len(parts) > 2 else "rw")
    return out


def _balanced(expr: str) -> bool:
    """Brackets of a PromQL expression pair up (outside quoted label values)."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def _default(value: str) -> str:
    match = DEFAULT.match(value)
    return match.group(2) if match else value


def _container_port(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])}


def test_the_registry_knows_the_new_metrics() -> None:
    names = exported_samples()
    for name in (
        "insights_consumer_lag_messages",
        "insights_event_time_lag_seconds_bucket",
        "insights_rollup_ops_per_batch_bucket",
        "insights_coder_gauges_refresh_failures_total",
        "insights_coder_gauges_refreshed_timestamp_seconds",
        api.coder_metrics.TEMPLATES_ACTIVE_USERS,
        api.coder_metrics.APPLICATIONS_USAGE_SECONDS,
        api.coder_metrics.PARAMETERS,
    ):
        assert name in names


def test_prometheus_and_grafana_run_pinned_images_on_loopback(compose: Any) -> None:
    services = compose["services"]
    for name, port in (("prometheus", 9090), ("grafana", 3000)):
        service = services[name]
        assert PINNED.match(_default(service["image"])), service["image"]
        assert service["ports"], name
        for published in service["ports"]:
            assert published.startswith("127.0.0.1:"), published
        assert _container_port(service) == {port}
        assert service["restart"] == "unless-stopped"
    assert set(compose["volumes"]) >= {"prometheus-data", "grafana-data"}


def test_configs_are_mounted_read_only_from_compose(compose: Any) -> None:
    expected = {
        "prometheus": {"/etc/prometheus"},
        "grafana": {"/etc/grafana/provisioning", "/etc/grafana/dashboards"},
    }
    for name, targets in expected.items():
        mounts = _mounts(compose["services"][name])
        assert set(mounts) == targets
        for source, mode in mounts.values():
            assert mode == "ro"
            assert (COMPOSE / source).is_dir(), source


def test_every_insights_setting_in_the_compose_file_exists(compose: Any) -> None:
    fields = {f"INSIGHTS_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "api"):
        for key in compose["services"][name].get("environment", {}):
            assert key in fields, (name, key)


def test_prometheus_scrapes_the_api_and_every_worker(compose: Any, prometheus: Any) -> None:
    services = compose["services"]
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {"insights-api", "insights-worker"}

    api_port = int(services["api"]["environment"]["INSIGHTS_API_PORT"])
    assert jobs["insights-api"]["static_configs"] == [{"targets": [f"api:{api_port}"]}]
    assert jobs["insights-api"]["metrics_path"] == "/metrics"

    worker_env = services["worker"]["environment"]
    (discovery,) = jobs["insights-worker"]["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    assert discovery["type"] == "A"
    assert discovery["port"] == int(worker_env["INSIGHTS_WORKER_METRICS_PORT"])
    assert worker_env["INSIGHTS_WORKER_METRICS_HOST"] == "0.0.0.0"  # reachable in the network
    Settings(**{k.removeprefix("INSIGHTS_").lower(): v for k, v in worker_env.items()
                if not str(v).startswith("$")})  # fmt: skip


def test_the_rule_files_exist_and_refer_to_exported_metrics(prometheus: Any) -> None:
    exported = exported_samples()
    rules = 0
    for path in prometheus["rule_files"]:
        assert path.startswith("/etc/prometheus/")
        groups = _yaml(COMPOSE / "prometheus" / path.removeprefix("/etc/prometheus/"))
        for group in groups["groups"]:
            for rule in group["rules"]:
                rules += 1
                assert rule["alert"] and rule["labels"]["severity"]
                assert rule["annotations"]["summary"]
                assert _balanced(rule["expr"]), rule["alert"]
                names = set(METRIC.findall(rule["expr"]))
                assert names, rule["alert"]
                assert names <= exported, (rule["alert"], names - exported)
    assert rules >= 5


def test_grafana_provisions_the_datasource_the_dashboard_uses(compose: Any, dashboard: Any) -> None:
    provisioning = COMPOSE / "grafana" / "provisioning"
    (source,) = _yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    (provider,) = _yaml(provisioning / "dashboards" / "insights.yml")["providers"]
    mounts = _mounts(compose["services"]["grafana"])
    assert mounts[provider["options"]["path"]][0] == "./grafana/dashboards"
    env = compose["services"]["grafana"]["environment"]
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == provider["options"]["path"]
    assert (COMPOSE / "grafana" / "dashboards" / home.name).is_file()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_the_dashboard_shows_pipeline_health_and_insights_from_exported_metrics(
    dashboard: Any,
) -> None:
    exported = exported_samples()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert dashboard["uid"] and dashboard["title"]
    used: set[str] = set()
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert _balanced(target["expr"]), panel["title"]
            names = set(METRIC.findall(target["expr"]))
            assert names, (panel["title"], target["expr"])
            assert names <= exported, (panel["title"], names - exported)
            used |= names
    assert used >= {
        "insights_events_total",  # events/s
        "insights_consumer_lag_messages",
        "insights_events_rejected_total",  # dead-letter rate
        "insights_batch_seconds_bucket",  # batch latency
        "insights_event_time_lag_seconds_bucket",
        "insights_rollup_ops_per_batch_bucket",
        "coderd_insights_templates_active_users",
        "coderd_insights_applications_usage_seconds",
        "coderd_insights_parameters",
    }


def test_panels_do_not_overlap(dashboard: Any) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, panel["title"]
        cells |= area


# --- the Redis Cluster variant (an override of docker-compose.yml) -----------------------


class _ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (``!override``, ``!reset``) read as the plain node."""


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!override", "!reset"):
    _ComposeLoader.add_constructor(_tag, _plain)


@pytest.fixture(scope="module")
def cluster_compose() -> Any:
    text = (COMPOSE / "docker-compose.cluster.yml").read_text()
    return yaml.load(text, Loader=_ComposeLoader)


def test_the_cluster_variant_runs_three_cluster_nodes_and_joins_them(cluster_compose: Any) -> None:
    services = cluster_compose["services"]
    nodes = [f"redis-{i}" for i in (1, 2, 3)]
    for name in nodes:
        args = " ".join(services[name]["command"])
        assert "--cluster-enabled yes" in args and "--appendonly yes" in args, name
        assert services[name]["image"] == "redis:7-alpine"
    init = services["redis-cluster-init"]
    assert init["restart"] == "no"
    assert set(init["depends_on"]) == set(nodes)
    script = init["command"][0]
    assert "--cluster create" in script and "cluster_state:ok" in script
    # The base file's single Redis is left out (only an explicit profile starts it).
    assert services["redis"]["profiles"] == ["single-redis"]


def test_the_cluster_variant_points_worker_and_api_at_the_cluster(
    compose: Any, cluster_compose: Any
) -> None:
    from insights.redis_client import parse_cluster_url

    services = cluster_compose["services"]
    fields = {f"INSIGHTS_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "api"):
        env = services[name]["environment"]
        assert set(env) <= fields, name
        seeds = parse_cluster_url(env["INSIGHTS_REDIS_URL"]).nodes
        assert seeds == (("redis-1", 6379), ("redis-2", 6379), ("redis-3", 6379))
        assert "redis" not in services[name]["depends_on"]
        assert services[name]["depends_on"]["redis-cluster-init"] == {
            "condition": "service_completed_successfully"
        }
        assert name in compose["services"]  # an override of services the base file has
    worker = services["worker"]
    assert DEFAULT.match(worker["environment"]["INSIGHTS_TOPIC_PARTITIONS"]).group(2) == "12"  # type: ignore[union-attr]
    assert DEFAULT.match(worker["deploy"]["replicas"]).group(2) == "2"  # type: ignore[union-attr]
    partitions = cluster_compose["services"]["kafka-init"]["environment"]["PARTITIONS"]
    assert DEFAULT.match(partitions).group(2) == "12"  # type: ignore[union-attr]
    assert set(cluster_compose["volumes"]) == {"redis-1-data", "redis-2-data", "redis-3-data"}
