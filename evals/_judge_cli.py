"""``gavel eval judge|align|promote``: the judge checked against a suite's human labels,
a judge check aligned among candidates, labelled production records made a golden set."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from evals._cli_common import configs, load, need_key
from serving import CliError, SubParsers, day_arg, open_store


def add_judge_commands(
    ev: SubParsers[argparse.ArgumentParser],
    *,
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Register ``eval judge``, ``eval align`` and ``eval promote`` on ``ev``."""
    jd = ev.add_parser("judge", help="the judge against the human labels of a suite")
    jd.add_argument("suite", type=Path)
    common(jd)
    jd.set_defaults(func=cmd_judge)

    al = ev.add_parser("align", help="choose among a judge check's candidate implementations")
    al.add_argument("suite", type=Path)
    al.add_argument("--criterion", required=True, help="the judge check to align")
    al.add_argument("--max-false-fail", type=float, default=0.2)
    al.add_argument("--held-out", type=float, default=0.5, help="share of labelled items held out")
    al.add_argument("--seed", type=int, default=0)
    al.add_argument("--write", type=Path, help="write the chosen rubric as a criteria file")
    common(al)
    al.set_defaults(func=cmd_align)

    pr = ev.add_parser("promote", help="labelled production records -> a golden dataset")
    when = pr.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=day_arg, help="records judged on this day")
    when.add_argument("--since", type=day_arg, help="records judged on or after this day")
    pr.add_argument("--out", type=Path, required=True, help="dataset JSONL to write")
    pr.add_argument("--judging")
    pr.set_defaults(func=cmd_promote)


def cmd_judge(args: argparse.Namespace) -> int:
    """The judge against the suite's human labels, per criterion."""
    from evals._judge_eval import evaluate_judge, labelled_criteria

    stack, judging = configs(args)
    loaded = load(args, judging)
    criteria = labelled_criteria(loaded, judging.criteria_dir)
    need_key(args)
    from evals._generate import Endpoint, check_endpoint

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
    from serving.store import keep_golden

    _, judging = configs(args)
    store = open_store(args.config)
    lines, misses = promote(
        store,
        judging,
        first=args.date or args.since,
        last=args.date,
    )
    if not lines:
        raise CliError("no labelled records in that range; label some with `gavel label`", 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    kept = keep_golden(store, [line["id"] for line in lines])
    print(
        f"wrote {len(lines)} items to {args.out} ({misses} tagged judge_miss); "
        f"retention keeps their {kept} record(s)"
    )
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    """Choose a candidate on the selection part; print its held-out figures."""
    import yaml

    from evals._align import align
    from evals._generate import Endpoint, check_endpoint

    stack, judging = configs(args)
    loaded = load(args, judging)
    key = need_key(args)
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
