"""KubeRay manifests: well-formed, and the embedded stack config validates."""

from __future__ import annotations

from pathlib import Path

import yaml

from serving import app_builder, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_rayservice_embeds_a_valid_gpu_stack() -> None:
    docs = list(yaml.safe_load_all((ROOT / "k8s/rayservice-gpu.yaml").read_text()))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    svc = next(d for d in docs if d["kind"] == "RayService")
    stack = parse_config(yaml.safe_load(cm["data"]["stack.yaml"]), source="k8s configmap")
    assert stack.gateway.store.url.startswith("postgresql")
    assert stack.model("app").resources.gpus == 1 and stack.model("judge").resources.gpus == 0.5
    serve = yaml.safe_load(svc["spec"]["serveConfigV2"])
    app = serve["applications"][0]
    assert app["import_path"] == "serving:app_builder" and callable(app_builder)
    assert app["args"]["config"].startswith("/etc/gavel/")
    cluster = svc["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    gpus = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    needed = sum(m.resources.gpus for m in stack.models)
    assert float(gpus["limits"]["nvidia.com/gpu"]) >= needed
