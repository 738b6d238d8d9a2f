"""KubeRay manifests for the whole day, validated with no cluster: core kinds against
Kubernetes' schemas (kubernetes-validate), the embedded Serve config with Ray's own
schema, the configs with Gavel's models, the CronJob's command line with Gavel's parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from judges import JudgingConfig
from serving import app_builder, parse_config, parse_model
from serving.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30.0"
CORE_KINDS = {
    "ConfigMap", "Secret", "PersistentVolumeClaim", "CronJob", "NetworkPolicy", "Service",
    "Deployment",
}  # fmt: skip
CRD_KINDS = {"RayService", "PodMonitor", "ServiceMonitor", "PrometheusRule"}


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(ROOT.glob("k8s/**/*.yaml")):
        if path.name in ("rules_test.yaml", "rules.yaml", "kustomization.yaml"):
            continue
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


DOCS = _docs()


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    return next(
        d for _, d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    )


@pytest.mark.parametrize(
    "doc", [d for _, d in DOCS if d["kind"] in CORE_KINDS],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)  # fmt: skip
def test_core_kinds_match_kubernetes_schemas(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_kind_is_checked_somewhere() -> None:
    kinds = {d["kind"] for _, d in DOCS}
    assert kinds <= CORE_KINDS | CRD_KINDS, kinds - CORE_KINDS - CRD_KINDS
    for needed in ("CronJob", "PersistentVolumeClaim", "Secret", "PrometheusRule", "PodMonitor",
                   "ServiceMonitor", "RayService", "NetworkPolicy"):  # fmt: skip
        assert needed in kinds


def test_rayservice_serve_config_matches_ray_s_schema() -> None:
    svc = _one("RayService")
    serve = ServeDeploySchema.model_validate(yaml.safe_load(svc["spec"]["serveConfigV2"]))
    app = serve.applications[0]
    assert app.import_path == "serving:app_builder" and callable(app_builder)
    assert app.args["config"] == "/etc/gavel/stack.yaml"
    cluster = svc["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["authOptions"] == {"mode": "token"}, "Ray's dashboard must need a token"


def test_configmap_configs_validate_with_gavel_s_models() -> None:
    cm = _one("ConfigMap", "gavel-config")
    stack = parse_config(yaml.safe_load(cm["data"]["stack.yaml"]), source="k8s gavel-config")
    assert stack.gateway.store.url.startswith("postgresql")
    assert ":" not in stack.gateway.store.url.split("//", 1)[1].split("@")[0], "password in URL"
    assert stack.http.base_url == "http://gavel-serve-svc:8000/v1"
    assert stack.ray.metrics_export_port == 8080
    parse_model(yaml.safe_load(cm["data"]["judging.yaml"]), JudgingConfig, source="judging")
    cluster = _one("RayService")["spec"]["rayClusterConfig"]
    gpus = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    assert float(gpus["limits"]["nvidia.com/gpu"]) >= sum(m.resources.gpus for m in stack.models)


def test_secrets_come_from_secrets_never_configmaps() -> None:
    for _, d in DOCS:
        if d["kind"] == "ConfigMap":
            text = yaml.safe_dump(d["data"]).lower()
            assert "password:" not in text and "api_key" not in text and "sk-" not in text
    job = _one("CronJob", "gavel-judge-daily")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e for e in job["env"]}
    assert env["GAVEL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "gavel-judge-key"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "gavel-postgres"
    head = _one("RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    head_env = {e["name"]: e for e in head["containers"][0]["env"]}
    assert "secretKeyRef" in head_env["PGPASSWORD"]["valueFrom"]


def test_spool_is_on_a_persistent_volume_everywhere() -> None:
    cluster = _one("RayService")["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["workerGroupSpecs"]
    ]
    for pod in pods:
        spool = next(v for v in pod["volumes"] if v["name"] == "spool")
        assert "emptyDir" not in spool
        assert spool["persistentVolumeClaim"]["claimName"] == "gavel-spool"
    assert "ReadWriteMany" in _one("PersistentVolumeClaim")["spec"]["accessModes"]


def test_cronjob_command_line_parses_with_gavel_s_parser() -> None:
    cron = _one("CronJob", "gavel-judge-daily")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    c = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["gavel"]
    args = build_parser().parse_args(c["args"])
    assert args.func.__name__ == "cmd_daily"
    assert args.config == "/etc/gavel/stack.yaml" and args.judging == "/etc/gavel/judging.yaml"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/etc/gavel" in mounts


def test_the_online_judge_is_one_loop_on_the_stack_and_judging_configs() -> None:
    dep = _one("Deployment", "gavel-judge-online")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(c["args"])
    assert args.func.__name__ == "cmd_online" and not args.once
    assert args.config == "/etc/gavel/stack.yaml" and args.judging == "/etc/gavel/judging.yaml"
    env = {e["name"]: e for e in c["env"]}
    assert env["GAVEL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "gavel-judge-key"
    cm = _one("ConfigMap", "gavel-config")["data"]["judging.yaml"]
    judging = parse_model(yaml.safe_load(cm), JudgingConfig, source="judging")
    assert judging.online and judging.online[0].sample_rate < 1


def test_purge_cronjob_runs_gavel_store_purge_on_the_stack_config() -> None:
    cron = _one("CronJob", "gavel-store-purge")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    c = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(c["args"])
    assert args.func.__name__ == "cmd_purge" and not args.dry_run
    assert args.config == "/etc/gavel/stack.yaml"
    cm = _one("ConfigMap", "gavel-config")
    stack = parse_config(yaml.safe_load(cm["data"]["stack.yaml"]), source="k8s gavel-config")
    assert stack.gateway.store.retention.production.text_days is not None
    kustomize = yaml.safe_load((ROOT / "k8s/kustomization.yaml").read_text())
    assert "store-purge-cronjob.yaml" in kustomize["resources"]


def test_swap_report_cronjob_runs_gavel_swap_report_and_waits_for_a_swap() -> None:
    cron = _one("CronJob", "gavel-swap-report")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["suspend"] is True
    c = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(c["args"])
    assert args.func.__name__ == "cmd_report" and not args.no_judge
    assert args.date is None and args.since is None  # from the swap's first day
    assert args.config == "/etc/gavel/stack.yaml" and args.judging == "/etc/gavel/judging.yaml"
    assert str(args.out).startswith("/var/lib/gavel")
    assert {e["name"] for e in c["env"]} >= {"GAVEL_API_KEY"}
    kustomize = yaml.safe_load((ROOT / "k8s/kustomization.yaml").read_text())
    assert "swap-report-cronjob.yaml" in kustomize["resources"]


def test_scrape_objects_select_the_gateway_and_ray_ports() -> None:
    pod = _one("PodMonitor")
    assert [e["port"] for e in pod["spec"]["podMetricsEndpoints"]] == ["metrics"]
    sm = _one("ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    head = _one("RayService")["spec"]["rayClusterConfig"]["headGroupSpec"]
    ports = {
        p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]
    }
    assert ports["metrics"] == int(head["rayStartParams"]["metrics-export-port"]) == 8080
    assert ports["serve"] == 8000


def _images(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "image" and isinstance(v, str)]
        return found + [i for v in node.values() for i in _images(v)]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


def test_every_container_runs_the_one_image_kustomize_names() -> None:
    kust = yaml.safe_load((ROOT / "k8s/kustomization.yaml").read_text())
    (entry,) = kust["images"]
    images = {i for _, d in DOCS for i in _images(d)}
    assert images, "no container image found in k8s/"
    assert images == {f"{entry['name']}:{entry['newTag']}"}, images
    listed = {ROOT / "k8s" / r for r in kust["resources"]}
    assert all(p.is_file() for p in listed), listed
    for path in ROOT.glob("k8s/**/*.yaml"):
        refs = [w for w in path.read_text().split() if w.endswith(".yaml") and "/" not in w]
        for ref in refs:  # a manifest that names another file names one that exists
            name = ref.strip("`'\",.()")
            found = [p for d in ("k8s", "config") for p in (ROOT / d).glob(f"**/{name}")]
            assert found, f"{path.name} refers to missing {name}"
