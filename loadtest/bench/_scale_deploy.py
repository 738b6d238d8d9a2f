"""Deploy the capacity benchmark's Serve apps (a process of its own: the benchmark's load
generator monkey-patches with gevent, which a Ray driver must not share).

``python -m loadtest.bench._scale_deploy --replicas N --store URL --spool DIR``: on a local
Ray (started if none runs), stock Ray Serve LLM and Gavel on the same simulated engine,
each with stream batching 0 and 50 ms, as four apps at ``/stock-b0``, ``/stock-b50``,
``/gavel-b0`` and ``/gavel-b50``, each with ``N`` ingress replicas.

With ``--tracing URL`` (``loadtest.bench.scale_tracing``): three Gavel apps at the GPU
default batching instead, at ``/gavel-t-off``, ``/gavel-t-1`` and ``/gavel-t-001``, with
``gateway.tracing`` off, on at a sample ratio of 1.0 and on at 0.01, exporting to ``URL``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from serving import StackConfig, parse_config
from serving._stack import proxy_env

PROFILE = "llama-3.1-8b-h100"
BATCHING = (0, 50)
ENGINE_CLS = "serving.sim.engine.SimEngine"
TRACING = {"t-off": None, "t-1": 1.0, "t-001": 0.01}
HAPROXY_ENV = proxy_env("direct")
"""Ray's fastest path (2.56+, experimental): HAProxy in place of Serve's proxy, and an LLM
replica that is its own HTTP ingress. Read when Ray and Serve start (``ray start``, the
deploying process)."""
"""The tracing settings' app suffixes and sample ratios (``None``: tracing off)."""


def sim_model(model_id: str, batching_ms: int) -> dict[str, object]:
    """One simulated app model, as a stack config's ``models`` entry."""
    return {
        "role": "app",
        "model_id": model_id,
        "source": {"simulate": PROFILE},
        "deployment": {"num_replicas": 1, "max_ongoing_requests": 1024},
        "resources": {"cpus": 0.25},
        "stream_batching_interval_ms": batching_ms,
        "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.20},
    }


def gavel_config(
    batching_ms: int,
    *,
    replicas: int,
    store: str,
    spool: str,
    name: str | None = None,
    tracing: dict[str, object] | None = None,
    direct: bool = False,
) -> StackConfig:
    """Gavel over one simulated engine: its gateway with ``replicas`` ingress replicas, or
    (``direct``) inside the engine's replica (``http.proxy: direct``)."""
    gateway: dict[str, object] = {
        "store": {"url": store},
        "capture": {"spool_dir": spool},
    }
    if not direct:
        gateway["deployment"] = {"num_replicas": replicas, "max_ongoing_requests": 1024}
    if tracing is not None:
        gateway["tracing"] = tracing
    return parse_config(
        {
            "app_name": name or f"gavel{'-direct' if direct else ''}-b{batching_ms}",
            "http": {"proxy": "direct" if direct else "ray"},
            "gateway": gateway,
            "models": [sim_model("app-model", batching_ms)],
        }
    )


def tracing_configs(endpoint: str, *, store: str, spool: str) -> list[StackConfig]:
    """The tracing comparison's Gavel apps: one per :data:`TRACING` setting, 50 ms batching."""
    out = []
    for suffix, ratio in TRACING.items():
        tracing: dict[str, object] = {"enabled": False}
        if ratio is not None:
            tracing = {"enabled": True, "endpoint": endpoint, "sample_ratio": ratio}
        name = f"gavel-{suffix}"
        out.append(
            gavel_config(50, replicas=1, store=store, spool=spool, name=name, tracing=tracing)
        )
    return out


def stock_llm_config(batching_ms: int) -> Any:
    """Stock Ray Serve LLM's config of the simulated model (the engine by its env var:
    ``build_openai_app`` takes no server arguments)."""
    from serving import to_llm_config

    model = parse_config({"models": [sim_model("app-model", batching_ms)]}).models[0]
    llm = to_llm_config(model, base_dir=Path.cwd())
    return llm.model_copy(
        update={"runtime_env": {"env_vars": {"RAYLLM_VLLM_ENGINE_CLS": ENGINE_CLS}}}
    )


def _deploy_on_haproxy(replicas: int, store: str, spool: str) -> None:
    """Under HAProxy (Serve started with :data:`HAPROXY_ENV`): ``stock-direct``, the
    simulated model as its own app whose replica is the HTTP ingress (direct streaming:
    no Serve hop, no stream batching); Gavel's two apps, whose ingress replicas HAProxy
    reaches directly (direct ingress: no proxy actor); and, with one replica, Gavel's
    two apps with the gateway in the engine's replica (``gavel-direct-b*``)."""
    from ray import serve
    from ray.llm._internal.serve import constants
    from ray.serve.llm import build_openai_app

    from serving import build_app

    assert constants.RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING, "run with HAPROXY_ENV set"
    stock = stock_llm_config(0)
    deployment = dict(stock.deployment_config or {}, num_replicas=1)
    app = build_openai_app(
        {"llm_configs": [stock.model_copy(update={"deployment_config": deployment})]}
    )
    serve.run(app, name="stock-direct", route_prefix="/stock-direct")
    for b in BATCHING:
        configs = [gavel_config(b, replicas=replicas, store=store, spool=spool)]
        if replicas == 1:  # the gateway in the engine's replica: no ingress replicas
            configs.append(gavel_config(b, replicas=1, store=store, spool=spool, direct=True))
        for config in configs:
            serve.run(build_app(config), name=config.app_name, route_prefix=f"/{config.app_name}")


def main() -> None:
    """Deploy the four apps and exit (they keep running on the local Ray)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--store", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--tracing", metavar="URL", help="deploy the tracing comparison instead")
    parser.add_argument(
        "--haproxy", action="store_true", help="Ray's fastest path: HAProxy, direct streaming"
    )
    args = parser.parse_args()

    from ray import serve
    from ray.serve.llm import build_openai_app

    from serving import build_app, connect_ray
    from serving._stack import start_local_ray

    if not connect_ray(None):
        start_local_ray(32, metrics_port=8080, env=HAPROXY_ENV if args.haproxy else None)
        assert connect_ray(None), "cannot reach the Ray just started"
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    if args.haproxy:
        _deploy_on_haproxy(args.replicas, args.store, args.spool)
        print("deployed", flush=True)
        return
    if args.tracing:
        for config in tracing_configs(args.tracing, store=args.store, spool=args.spool):
            serve.run(build_app(config), name=config.app_name, route_prefix=f"/{config.app_name}")
        print("deployed", flush=True)
        return
    for b in BATCHING:
        stock = stock_llm_config(b)
        app = build_openai_app(
            {
                "llm_configs": [stock],
                "ingress_deployment_config": {
                    "num_replicas": args.replicas,
                    "max_ongoing_requests": 1024,
                },
            }
        )
        serve.run(app, name=f"stock-b{b}", route_prefix=f"/stock-b{b}")
        config = gavel_config(b, replicas=args.replicas, store=args.store, spool=args.spool)
        serve.run(build_app(config), name=config.app_name, route_prefix=f"/{config.app_name}")
    print("deployed", flush=True)


if __name__ == "__main__":
    main()
