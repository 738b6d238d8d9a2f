"""``gavel console``: serve the console until Ctrl-C."""

from __future__ import annotations

import argparse
from pathlib import Path

from serving import CommandSet, load_config, open_store


def commands(cli: CommandSet) -> None:
    """Register ``gavel console``."""
    p = cli.command(
        "console",
        help="the web console: traffic, days, judges, labels, keys (sign in with a 'view' key)",
        description="Serve the console (the labelling pages are its /label/ views).",
    )
    p.add_argument("--judging")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8200)
    p.add_argument("--reports", type=Path, default=Path("reports"),
                   help="the reports folder: load tests under reports/loadtest/")  # fmt: skip
    p.add_argument("--bench-data", type=Path, default=Path("docs/benchmarks/data"),
                   help="the benchmarks' JSON (capacity.json)")  # fmt: skip
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help="send the session cookie over HTTPS only (behind a TLS proxy)",
    )
    p.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    """Open the configs and the store, and serve the console."""
    import uvicorn

    from evals.console._app import build_console_app
    from judges import load_judging

    stack = load_config(args.config)
    app = build_console_app(
        open_store(args.config),
        stack,
        load_judging(args.judging),
        secure_cookies=args.secure_cookies,
        reports=args.reports,
        bench_data=args.bench_data,
    )
    print(
        f"console: http://{args.host}:{args.port}/ ; sign in with a key that has the 'view' "
        "scope (`gavel keys create NAME --scopes view`; 'admin' also sees keys)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
