"""``gavel judge calibrate``: the judges against people, binary and pairwise."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import TYPE_CHECKING

from judges._cli_open import open_configs
from serving import CliError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from judges._calibration import CalibrationRow
    from judges._feedback import UserAgreement
    from judges._pairwise_calibration import PairwiseCalibration
    from judges._wire import Verdict
    from serving.store import Store


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


def format_pairwise(rows: list[PairwiseCalibration]) -> str:
    """The pairwise judges against people: three classes, kappa, position consistency."""
    out = [
        f"{'pairwise':<20} {'version':<12} {'n':>4} {'agree':>7} {'kappa':>7} {'95% CI':<17} "
        f"{'pos-cons':>8}  trusted"
    ]
    for r in rows:
        ci = f"[{_num(r.kappa_low)}, {_num(r.kappa_high)}]" if r.kappa is not None else "-"
        out.append(
            f"{r.criterion:<20} {r.criterion_version:<12} {r.n:>4} {_pct(r.agreement):>7} "
            f"{_num(r.kappa):>7} {ci:<17} {_pct(r.position_consistency):>8}  "
            f"{'yes' if r.trusted else 'NO'}: {r.reason}"
        )
        m = r.matrix
        out.append(
            "    people (rows) by judge (columns), A/B/tie: "
            + " | ".join(
                f"{h}: {row[0]} {row[1]} {row[2]}"
                for h, row in zip(("A", "B", "tie"), m, strict=True)
            )
            + (f"  ({r.unjudged_labels} labelled pairs not judged)" if r.unjudged_labels else "")
        )
    return "\n".join(out)


def against_users(
    store: Store, verdicts: Sequence[Verdict], mapping: dict[str, str], *, since: date | None
) -> list[UserAgreement]:
    """The judges of the criteria mapped to a feedback name, against users' feedback."""
    from judges._feedback import judge_vs_users
    from serving.feedback import feedback_between

    if not mapping:
        return []
    feedback = feedback_between(store, since or date(1970, 1, 1), date(9999, 12, 31))
    return judge_vs_users(verdicts, feedback, mapping)


def format_users(rows: list[UserAgreement]) -> str:
    """The judges against end users' feedback (kept apart from human labels)."""
    out = ["judge against users' feedback (POST /v1/feedback; apart from human labels, "
           "it never makes a judge trusted):"]  # fmt: skip
    for a in rows:
        ci = f"[{_num(a.kappa_low)}, {_num(a.kappa_high)}]" if a.kappa is not None else "-"
        m = a.confusion
        out.append(
            f"  {a.criterion:<20} vs {a.feedback:<12} n={m.n:<4} agreement "
            f"{_pct(a.agreement)} kappa {_num(a.kappa)} {ci}  (user negative: judge fail "
            f"{m.both_fail}, pass {m.judge_pass_human_fail} | user positive: judge fail "
            f"{m.judge_fail_human_pass}, pass {m.both_pass})"
        )
    return "\n".join(out)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Print per-criterion agreement of the judge with people."""
    from judges._calibration import calibrate, labeller_agreement
    from judges._labels import LabelStore
    from judges._pairwise_calibration import calibrate_pairs
    from judges._store import VerdictStore

    opened = open_configs(args, criterion=args.criterion)
    versions = {c.name: c.version for c in opened.kinds.pass_fail(opened.criteria)}
    labels = LabelStore(opened.store).query(criterion=args.criterion)
    verdicts = VerdictStore(opened.store).current(versions)
    rows = calibrate(
        opened.criteria,
        labels,
        verdicts,
        opened.judging.calibration,
        criterion=args.criterion,
        since=args.since,
        kinds=opened.kinds,
    )
    print(format_rows(rows))
    pairwise = calibrate_pairs(
        opened.criteria,
        labels,
        VerdictStore(opened.store).current(
            {c.name: c.version for c in opened.kinds.pairwise(opened.criteria)}
        ),
        opened.judging.calibration,
        criterion=args.criterion,
        since=args.since,
        kinds=opened.kinds,
    )
    if pairwise:
        print("\n" + format_pairwise(pairwise))
    pairs = labeller_agreement(opened.kinds.pass_fail(opened.criteria), labels)
    if pairs:
        print("\nagreement between labellers (the ceiling for the judge's kappa):")
        for a in pairs:
            print(
                f"  {a.criterion:<20} {a.labeller_a} / {a.labeller_b}: n={a.n} "
                f"agreement {_pct(a.agreement)} kappa {_num(a.kappa)}"
            )
    users = against_users(opened.store, verdicts, opened.judging.feedback, since=args.since)
    if users:
        print("\n" + format_users(users))
    if args.json is not None:
        everything = [*rows, *pairwise, *users]  # users: the judge against their feedback
        text = json.dumps([r.model_dump(mode="json") for r in everything], indent=2)
        text += "\n"
        try:
            args.json.write_text(text)
        except OSError as exc:
            raise CliError(f"cannot write {args.json}: {exc.strerror or exc}") from None
    return 0
