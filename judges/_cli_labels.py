"""``gavel label`` (the labelling page, import, export) and ``gavel judge calibrate``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from judges._calibration import CalibrationRow
from judges._config import JudgingConfig
from judges._criteria import Criterion
from serving._cli_gateway import day_arg
from serving._errors import CliError
from serving._store import Store

EXIT_USAGE = 2
DEFAULT_CONFIG = "config/cpu.yaml"
DEFAULT_JUDGING = "config/judging.yaml"


def _common(p: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """--config/--judging; under ``gavel label ACTION`` they may come before or after ACTION."""
    config: object = argparse.SUPPRESS if inherited else DEFAULT_CONFIG
    judging: object = argparse.SUPPRESS if inherited else DEFAULT_JUDGING
    p.add_argument("--config", default=config, help="stack config (for the store)")
    p.add_argument("--judging", default=judging, help="judging config (criteria)")


def add_label_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gavel label [import|export]``."""
    label = sub.add_parser(
        "label",
        help="the labelling page; `label import|export` move labels as JSONL",
        description="Without an action: serve the labelling page.",
    )
    _common(label)
    label.add_argument("--host", default="127.0.0.1")
    label.add_argument("--port", type=int, default=8100)
    label.set_defaults(func=cmd_serve)
    ls = label.add_subparsers(dest="label_command", required=False, metavar="ACTION")
    imp = ls.add_parser("import", help="import a JSONL file of labels (all rows or none)")
    _common(imp, inherited=True)
    imp.add_argument("file", type=Path)
    imp.add_argument("--labeller", default=None, help="for rows without one (default: import)")
    imp.set_defaults(func=cmd_import)
    exp = ls.add_parser("export", help="write the labels as JSONL (atomically)")
    _common(exp, inherited=True)
    exp.add_argument("file", type=Path)
    exp.add_argument("--criterion", default=None)
    exp.add_argument("--since", type=day_arg, default=None, help="labelled on or after this day")
    exp.set_defaults(func=cmd_export)


def add_calibrate_parser(judge_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``gavel judge calibrate``."""
    cal = judge_sub.add_parser("calibrate", help="agreement of the judge with human labels")
    _common(cal)
    cal.add_argument("--criterion", default=None, help="only this criterion")
    cal.add_argument("--since", type=day_arg, default=None, help="labels made on or after this day")
    cal.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    cal.set_defaults(func=cmd_calibrate)


@dataclass(frozen=True)
class _Opened:
    store: Store
    judging: JudgingConfig
    criteria: list[Criterion]


def _open(args: argparse.Namespace, *, criterion: str | None = None) -> _Opened:
    """Configs and the store; ``criterion``, if given, must be a pass/fail criterion."""
    from judges._config import load_judging
    from judges._criteria import load_criteria
    from serving._config import load_config
    from serving._store import resolve_url

    stack = load_config(args.config)
    judging = load_judging(args.judging)
    criteria = load_criteria(Path(judging.criteria_dir))
    names = sorted(c.name for c in criteria if c.kind != "pairwise")
    if criterion is not None and criterion not in names:
        raise CliError(
            f"unknown criterion {criterion!r}; pass/fail criteria: {', '.join(names)}", EXIT_USAGE
        )
    store = Store(resolve_url(stack.gateway.store.url, base_dir=Path.cwd()))
    return _Opened(store, judging, criteria)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the labelling page until Ctrl-C."""
    import uvicorn

    from judges._label_app import build_label_app

    opened = _open(args)
    app = build_label_app(opened.store, opened.criteria)
    print(
        f"labelling page: http://{args.host}:{args.port}/ (sign in with a key that has the "
        "'label' scope: `gavel keys create NAME --scopes label`)",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a JSONL label file in one transaction."""
    from judges._labels import LabelImportError, LabelStore, parse_label_file

    opened = _open(args)
    try:
        rows = parse_label_file(
            args.file, opened.criteria, labeller=args.labeller or "import", now=datetime.now(UTC)
        )
    except LabelImportError as exc:
        if exc.problems[0][0] == 0:
            raise CliError(f"{exc.problems[0][1]}; check the path", EXIT_USAGE) from None
        for line, message in exc.problems:
            print(f"{exc.path}:{line}: {message}", file=sys.stderr)
        raise CliError(
            f"{len(exc.problems)} bad row(s) in {exc.path}; nothing was imported. "
            "Fix the lines above and import again.",
            EXIT_USAGE,
        ) from None
    written = LabelStore(opened.store).upsert(rows)
    print(f"imported {written} labels from {args.file}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write labels as JSONL."""
    from judges._labels import LabelStore, since_filter, write_label_file

    opened = _open(args, criterion=args.criterion)
    found = since_filter(LabelStore(opened.store).query(criterion=args.criterion), args.since)
    try:
        write_label_file(args.file, found)
    except OSError as exc:
        raise CliError(f"cannot write {args.file}: {exc.strerror or exc}") from None
    print(f"exported {len(found)} labels to {args.file}")
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_rows(rows: list[CalibrationRow]) -> str:
    """The calibration table and the criteria-drift notes, as text."""
    out = [
        f"{'criterion':<20} {'version':<12} {'n':>4} {'agree':>7} {'kappa':>7} "
        f"{'95% CI':<17} {'coverage':>8} {'false-fail':>10}  trusted"
    ]
    for r in rows:
        ci = f"[{_num(r.kappa_low)}, {_num(r.kappa_high)}]" if r.kappa is not None else "-"
        out.append(
            f"{r.criterion:<20} {r.criterion_version:<12} {r.n:>4} {_pct(r.agreement):>7} "
            f"{_num(r.kappa):>7} {ci:<17} {_pct(r.coverage):>8} "
            f"{_pct(r.false_failure_rate):>10}  {'yes' if r.trusted else 'NO'}: {r.reason}"
        )
        m = r.confusion
        extra = []
        if r.unjudged_labels:
            extra.append(f"{r.unjudged_labels} labels without a pass/fail verdict")
        if r.earlier_version_labels:
            extra.append(f"{r.earlier_version_labels} labels of earlier versions not counted")
        out.append(
            f"    human fail: judge fail {m.both_fail}, judge pass {m.judge_pass_human_fail}"
            f" | human pass: judge fail {m.judge_fail_human_pass}, judge pass {m.both_pass}"
            + (f"  ({'; '.join(extra)})" if extra else "")
        )
    notes = [(r.criterion, n) for r in rows for n in r.drift_notes]
    out.append("")
    if not notes:
        out.append("criteria drift notes: none")
    else:
        out.append(f"criteria drift notes ({len(notes)}):")
        for crit, n in notes:
            when = "current" if n.current else "earlier version"
            out.append(
                f"  {crit} ({n.criterion_version}, {when}) on {n.item_id} by {n.labeller}: {n.note}"
            )
    return "\n".join(out)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Print per-criterion agreement of the judge with people."""
    from judges._calibration import calibrate
    from judges._labels import LabelStore
    from judges._store import VerdictStore

    opened = _open(args, criterion=args.criterion)
    versions = {c.name: c.version for c in opened.criteria if c.kind != "pairwise"}
    labels = LabelStore(opened.store).query(criterion=args.criterion)
    verdicts = VerdictStore(opened.store).current(versions)
    rows = calibrate(
        opened.criteria,
        labels,
        verdicts,
        opened.judging.calibration,
        criterion=args.criterion,
        since=args.since,
    )
    print(format_rows(rows))
    if args.json is not None:
        text = json.dumps([r.model_dump(mode="json") for r in rows], indent=2) + "\n"
        try:
            args.json.write_text(text)
        except OSError as exc:
            raise CliError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return 0
