"""``gavel eval run|list|compare|ab|judge|promote``: offline evals, CI gates, model swap.

Handlers parse arguments, call the evals' functions and print. A bad suite, dataset,
criterion, endpoint or key is a one-line error with exit 2; a failed gate exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import EXIT_USAGE, CliError, CommandSet, day_arg, open_store

if TYPE_CHECKING:
    from evals._run import Endpoint
    from evals._suite import LoadedSuite, Params
    from judges import JudgingConfig
    from serving import StackConfig


def _json_obj(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judging")
    p.add_argument(
        "--api-key",
        default=os.environ.get("GAVEL_API_KEY"),
        help="a key with the 'infer' and 'judge' scopes (default: $GAVEL_API_KEY)",
    )


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="OpenAI-compatible base URL (default: the stack's)")
    p.add_argument("--epochs", type=int, help="answers per item (default: the suite's)")
    p.add_argument("--no-cache", action="store_true", help="generate even if cached")
    p.add_argument("--out", type=Path, help="output folder (default: reports/evals/RUN)")


def commands(cli: CommandSet) -> None:
    """Register ``gavel eval ...``."""
    ev = cli.group("eval", help="offline eval suites, CI gates and A/B model swaps")
    run = ev.add_parser("run", help="run a suite on a model")
    run.add_argument("suite", type=Path)
    run.add_argument("--model", help="served model id (default: the suite's target)")
    run.add_argument("--params", type=_json_obj, help="sampling parameters (JSON) over the suite's")
    _target(run)
    _common(run)
    run.set_defaults(func=cmd_run)

    ls = ev.add_parser("list", help="stored runs, newest first")
    ls.set_defaults(func=cmd_list)

    cmp = ev.add_parser("compare", help="gate a candidate run against a baseline run")
    cmp.add_argument("baseline", help="run id or result.json")
    cmp.add_argument("candidate", help="run id or result.json")
    cmp.add_argument("--max-drop", type=float, default=0.02)
    cmp.add_argument("--json", type=Path, help="also write the comparison as JSON")
    cmp.set_defaults(func=cmd_compare)

    ab = ev.add_parser("ab", help="run a suite on two models (or settings) and judge pairwise")
    ab.add_argument("suite", type=Path)
    ab.add_argument("--a", required=True, help="model A (the baseline)")
    ab.add_argument("--b", required=True, help="model B (the candidate)")
    ab.add_argument("--a-params", type=_json_obj, help="A's sampling parameters (JSON)")
    ab.add_argument("--b-params", type=_json_obj, help="B's sampling parameters (JSON)")
    ab.add_argument("--max-drop", type=float, default=0.02)
    ab.add_argument("--max-flip-rate", type=float, default=0.15)
    _target(ab)
    _common(ab)
    ab.set_defaults(func=cmd_ab)

    jd = ev.add_parser("judge", help="the judge against the human labels of a suite")
    jd.add_argument("suite", type=Path)
    _common(jd)
    jd.set_defaults(func=cmd_judge)

    al = ev.add_parser("align", help="choose among a judge check's candidate implementations")
    al.add_argument("suite", type=Path)
    al.add_argument("--criterion", required=True, help="the judge check to align")
    al.add_argument("--max-false-fail", type=float, default=0.2)
    al.add_argument("--held-out", type=float, default=0.5, help="share of labelled items held out")
    al.add_argument("--seed", type=int, default=0)
    al.add_argument("--write", type=Path, help="write the chosen rubric as a criteria file")
    _common(al)
    al.set_defaults(func=cmd_align)

    pr = ev.add_parser("promote", help="labelled production records -> a golden dataset")
    when = pr.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=day_arg, help="records judged on this day")
    when.add_argument("--since", type=day_arg, help="records judged on or after this day")
    pr.add_argument("--out", type=Path, required=True, help="dataset JSONL to write")
    pr.add_argument("--judging")
    pr.set_defaults(func=cmd_promote)


def _configs(args: argparse.Namespace) -> tuple[StackConfig, JudgingConfig]:
    from judges import load_judging
    from serving import load_config

    return load_config(args.config), load_judging(args.judging)


def _load(args: argparse.Namespace, judging: JudgingConfig) -> LoadedSuite:
    from evals._suite import load_suite

    return load_suite(args.suite, criteria_dir=judging.criteria_dir)


def _need_key(args: argparse.Namespace) -> str:
    if not args.api_key:
        raise CliError(
            "no API key: pass --api-key or set GAVEL_API_KEY to a key with the 'infer' and "
            "'judge' scopes (`gavel keys create evals --scopes infer,judge`)",
            EXIT_USAGE,
        )
    return str(args.api_key)


def _params(base: Params, over: dict[str, Any] | None) -> Params:
    from pydantic import ValidationError

    from evals._suite import Params

    try:
        return Params.model_validate({**base.model_dump(), **(over or {})})
    except ValidationError as exc:
        e = exc.errors()[0]
        raise CliError(f"params: {'.'.join(map(str, e['loc']))}: {e['msg']}", EXIT_USAGE) from None


def _endpoint(
    args: argparse.Namespace,
    stack: StackConfig,
    loaded: LoadedSuite,
    model: str | None,
    params: dict[str, Any] | None,
) -> Endpoint:
    from evals._run import Endpoint, check_endpoint

    t = loaded.suite.target
    if model is None:
        if t.model is not None:
            model = t.model
        else:
            try:
                model = stack.model(t.role or "app").model_id
            except KeyError:
                raise CliError(
                    f"{args.config}: no model with role {t.role!r}", EXIT_USAGE
                ) from None
    ep = Endpoint(
        base_url=args.base_url or stack.http.base_url,
        api_key=_need_key(args),
        model=model,
        params=_params(t.params, params),
        system=t.system,
    )
    check_endpoint(ep)
    return ep


def _run(
    args: argparse.Namespace,
    ep: Endpoint,
    loaded: LoadedSuite,
    stack: StackConfig,
    judging: JudgingConfig,
) -> Any:
    from evals._report import run_table, write_run
    from evals._run import run_suite

    store = open_store(args.config)
    result = run_suite(
        loaded,
        ep,
        store,
        stack=stack,
        judging=judging,
        judge_api_key=ep.api_key,
        epochs=args.epochs,
        use_cache=not args.no_cache,
    )
    out = write_run(result, args.out or Path("reports/evals") / result.run_id)
    print(run_table(result))
    print(f"result: {out}")
    return result


def cmd_run(args: argparse.Namespace) -> int:
    """Run a suite and write its result."""
    stack, judging = _configs(args)
    loaded = _load(args, judging)
    ep = _endpoint(args, stack, loaded, args.model, args.params)
    _run(args, ep, loaded, stack, judging)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List stored runs."""
    from evals._run import list_runs

    rows = list_runs(open_store(args.config))
    if not rows:
        print("no eval runs yet; run one with `gavel eval run SUITE`")
    for r in rows:
        print(
            f"{r['run_id']:<36} {r['suite']:<20} {r['model']:<16} {r['created_at']:%Y-%m-%d %H:%M}"
        )
    return 0


def _gate(args: argparse.Namespace, base: Any, cand: Any) -> Any:
    from evals._compare import compare
    from evals._report import comparison_table

    if (base.suite_hash, base.dataset_hash) != (cand.suite_hash, cand.dataset_hash):
        raise CliError(
            f"runs of different suites or datasets: {base.run_id} ({base.suite} "
            f"{base.suite_hash}/{base.dataset_hash}) and {cand.run_id} ({cand.suite} "
            f"{cand.suite_hash}/{cand.dataset_hash})",
            EXIT_USAGE,
        )
    comparison = compare(base, cand, max_drop=args.max_drop)
    print(comparison_table(comparison))
    return comparison


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two runs; exit 1 when a gating check dropped."""
    from evals._run import load_run

    store = open_store(args.config)
    comparison = _gate(args, load_run(store, args.baseline), load_run(store, args.candidate))
    if args.json is not None:
        args.json.write_text(comparison.model_dump_json(indent=2))
    print("gate: FAIL" if comparison.failed else "gate: pass")
    return 1 if comparison.failed else 0


def cmd_ab(args: argparse.Namespace) -> int:
    """Run both arms, compare them, judge them pairwise; exit 1 if B is worse."""
    from evals._ab import judge_pairs, pairwise_criterion
    from evals._report import pairwise_table

    stack, judging = _configs(args)
    loaded = _load(args, judging)
    crit = pairwise_criterion(loaded, judging.criteria_dir)
    ep_a = _endpoint(args, stack, loaded, args.a, args.a_params)
    ep_b = _endpoint(args, stack, loaded, args.b, args.b_params)
    print("== A ==")
    a = _run(args, ep_a, loaded, stack, judging)
    print("== B ==")
    b = _run(args, ep_b, loaded, stack, judging)
    comparison = _gate(args, a, b)
    report = judge_pairs(
        loaded,
        a,
        b,
        crit,
        open_store(args.config),
        stack,
        judging,
        ep_a.api_key,
        max_flip_rate=args.max_flip_rate,
    )
    print(pairwise_table(report))
    worse = comparison.failed or report.decision == "A better"
    print("gate: FAIL" if worse else "gate: pass")
    return 1 if worse else 0


def cmd_judge(args: argparse.Namespace) -> int:
    """The judge against the suite's human labels, per criterion."""
    from evals._judge_eval import evaluate_judge, labelled_criteria

    stack, judging = _configs(args)
    loaded = _load(args, judging)
    criteria = labelled_criteria(loaded, judging.criteria_dir)
    _need_key(args)
    from evals._run import Endpoint, check_endpoint

    check_endpoint(
        Endpoint(
            stack.http.base_url,
            args.api_key,
            stack.model("judge").model_id,
            loaded.suite.target.params,
        )
    )
    figures = evaluate_judge(
        loaded, criteria, open_store(args.config), stack, judging, args.api_key
    )
    print(
        f"{'criterion':<22} {'n':>4} {'agree':>7} {'kappa [95% CI]':>24} "
        f"{'coverage [CI]':>22} {'false-fail [CI]':>22}  trusted"
    )

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    for f in figures:
        c = f.calibration
        kappa = "-" if c.kappa is None else f"{c.kappa:.2f} [{c.kappa_low:.2f}, {c.kappa_high:.2f}]"
        cov = f"{pct(c.coverage)} [{pct(f.coverage_ci[0])}, {pct(f.coverage_ci[1])}]"
        lo, hi = f.false_failure_ci
        ff = f"{pct(c.false_failure_rate)} [{pct(lo)}, {pct(hi)}]"
        print(
            f"{c.criterion:<22} {c.n:>4} {pct(c.agreement):>7} {kappa:>24} {cov:>22} {ff:>22}  "
            f"{'yes' if c.trusted else 'NO'}: {c.reason}"
        )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Write labelled production records as a golden dataset."""
    from evals._promote import promote

    _, judging = _configs(args)
    lines, misses = promote(
        open_store(args.config),
        judging,
        first=args.date or args.since,
        last=args.date,
    )
    if not lines:
        raise CliError("no labelled records in that range; label some with `gavel label`", 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"wrote {len(lines)} items to {args.out} ({misses} tagged judge_miss)")
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    """Choose a candidate on the selection part; print its held-out figures."""
    import yaml

    from evals._align import align
    from evals._run import Endpoint, check_endpoint

    stack, judging = _configs(args)
    loaded = _load(args, judging)
    key = _need_key(args)
    judge_id = stack.model("judge").model_id
    check_endpoint(Endpoint(stack.http.base_url, key, judge_id, loaded.suite.target.params))
    result = align(
        loaded,
        args.criterion,
        open_store(args.config),
        stack,
        judging,
        key,
        max_false_failure=args.max_false_fail,
        held_out_share=args.held_out,
        seed=args.seed,
    )

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    print(
        f"{result.check}: {result.selection_items} items to choose on, "
        f"{result.held_out_items} held out; false-failure limit {pct(result.max_false_failure)}"
    )
    print("selection part (used to choose, not a result):")
    for f in result.candidates:
        r = f.selection
        print(
            f"  {f.candidate:<20} coverage {pct(r.coverage):>5} false-fail "
            f"{pct(r.false_failure_rate):>5} agreement {pct(r.agreement):>5}"
        )
    h = result.held_out
    kappa = "-" if h.kappa is None else f"{h.kappa:.2f}"
    print(
        f"chosen: {result.chosen}; held out (the result): n={h.n} coverage {pct(h.coverage)} "
        f"false-fail {pct(h.false_failure_rate)} agreement {pct(h.agreement)} kappa {kappa}"
    )
    if args.write is not None:
        if result.chosen_rubric is None:
            raise CliError(f"the chosen candidate {result.chosen!r} is an assertion, not a rubric")
        crit = loaded.criteria[args.criterion].model_copy(update={"rubric": result.chosen_rubric})
        doc = {"criteria": [crit.model_dump(mode="json", exclude_defaults=True)]}
        args.write.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        print(f"wrote {args.write} (criterion {crit.name}, new version {crit.version})")
    return 0
