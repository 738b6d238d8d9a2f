"""``gavel monitoring``: generate and check the dashboards and Kubernetes objects, and
bring up a real Prometheus against the running stack."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from serving._commandline import CommandSet
from serving._errors import CliError

DASHBOARD_DIR = Path("k8s/monitoring/dashboards")
RULES_FILE = Path("k8s/monitoring/rules.yaml")
K8S_FILE = Path("k8s/gavel-monitoring.yaml")


def add_commands(cli: CommandSet) -> None:
    """Register ``monitoring generate|check|prometheus``."""
    mon = cli.group("monitoring", help="dashboards, alert rules, a local Prometheus")
    gen = mon.add_parser(
        "generate", help="write the dashboards' JSON and k8s/gavel-monitoring.yaml"
    )
    gen.add_argument("--root", default=".", help="the repository (default: here)")
    gen.set_defaults(func=_cmd_generate)
    chk = mon.add_parser("check", help="fail if the committed files differ from the code")
    chk.add_argument("--root", default=".", help="the repository (default: here)")
    chk.set_defaults(func=_cmd_check)
    prom = mon.add_parser("prometheus", help="run Prometheus against the running stack")
    prom.add_argument("--port", type=int, default=9090)
    prom.add_argument("--root", default=".", help="the repository (for the rules file)")
    prom.set_defaults(func=_cmd_prometheus)


def expected_files(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` and the content the code gives it."""
    from serving.monitoring._dashboards import dashboard_json
    from serving.monitoring._k8s import monitoring_yaml
    from serving.monitoring._panels import dashboard_specs

    rules = root / RULES_FILE
    if not rules.is_file():
        raise CliError(f"{rules}: not found; pass --root with the repository's folder")
    out = {root / DASHBOARD_DIR / f"{s.uid}.json": dashboard_json(s) for s in dashboard_specs()}
    out[root / K8S_FILE] = monitoring_yaml(rules)
    return out


def _cmd_generate(args: argparse.Namespace) -> int:
    for path, text in expected_files(Path(args.root)).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    stale = [
        str(p)
        for p, text in expected_files(Path(args.root)).items()
        if not p.is_file() or p.read_text(encoding="utf-8") != text
    ]
    if stale:
        raise CliError(f"out of date: {', '.join(stale)}; run `gavel monitoring generate`")
    print("dashboards and k8s/gavel-monitoring.yaml match the code")
    return 0


def _cmd_prometheus(args: argparse.Namespace) -> int:
    from serving._config import load_config
    from serving.monitoring._prometheus import LocalPrometheus, scrape_targets

    config = load_config(args.config)
    targets = scrape_targets(config)
    workdir = Path(tempfile.mkdtemp(prefix="gavel-prometheus-"))
    try:
        prom = LocalPrometheus(
            targets, workdir=workdir, port=args.port, interval_s=5,
            rule_files=[Path(args.root) / RULES_FILE],
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    try:
        prom.wait_ready()
    except RuntimeError as exc:
        prom.stop()
        raise CliError(f"{exc}; is port {args.port} free? Try --port") from None
    for t in targets:
        print(f"scraping {t.job}: {t.url}")
    print(f"Prometheus: {prom.url}  (graph: {prom.url}/graph, alerts: {prom.url}/alerts)")
    print(
        f"Grafana: add {prom.url} as a Prometheus data source, then import {DASHBOARD_DIR}/*.json"
    )
    print("Ctrl-C stops it; its data is in", workdir)
    return prom.wait()
